// The Go echo process: bench.v1.Echo on grpc-go, the direct path's server that is not the
// bottleneck (a grpc-go server spends a fraction of the CPU per call of a grpc-js one).
// It needs no generated code: a codec registered as "proto" hands raw message bytes to the
// handlers, which read field 2 (payload) of EchoRequest and answer EchoReply{payload}.
// Prints {"type":"ready","port":…,"pid":…} once listening; exits when stdin closes.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protowire"
)

// rawCodec passes message bytes through untouched.
type rawCodec struct{}

func (rawCodec) Name() string { return "proto" }

func (rawCodec) Marshal(v any) ([]byte, error) {
	b, ok := v.(*[]byte)
	if !ok {
		return nil, fmt.Errorf("raw codec: cannot marshal %T", v)
	}
	return *b, nil
}

func (rawCodec) Unmarshal(data []byte, v any) error {
	b, ok := v.(*[]byte)
	if !ok {
		return fmt.Errorf("raw codec: cannot unmarshal into %T", v)
	}
	*b = append((*b)[:0], data...)
	return nil
}

// reply builds EchoReply{payload} from an EchoRequest{key = 1, payload = 2}.
func reply(request []byte) ([]byte, error) {
	var payload []byte
	for len(request) > 0 {
		num, typ, n := protowire.ConsumeTag(request)
		if n < 0 {
			return nil, protowire.ParseError(n)
		}
		request = request[n:]
		if num == 2 && typ == protowire.BytesType {
			v, m := protowire.ConsumeBytes(request)
			if m < 0 {
				return nil, protowire.ParseError(m)
			}
			payload = v
			request = request[m:]
			continue
		}
		m := protowire.ConsumeFieldValue(num, typ, request)
		if m < 0 {
			return nil, protowire.ParseError(m)
		}
		request = request[m:]
	}
	if len(payload) == 0 {
		// proto3: an empty bytes field is not written (grpc-js answers the same 0 bytes).
		return []byte{}, nil
	}
	out := make([]byte, 0, len(payload)+8)
	out = protowire.AppendTag(out, 1, protowire.BytesType)
	return protowire.AppendBytes(out, payload), nil
}

func echo(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	var in []byte
	if err := dec(&in); err != nil {
		return nil, err
	}
	out, err := reply(in)
	if err != nil {
		return nil, status.Error(codes.InvalidArgument, err.Error())
	}
	return &out, nil
}

type echoServer interface{}

var serviceDesc = grpc.ServiceDesc{
	ServiceName: "bench.v1.Echo",
	HandlerType: (*echoServer)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Open", Handler: echo},
		{MethodName: "Call", Handler: echo},
		{MethodName: "Read", Handler: echo},
	},
	Metadata: "bench/v1/bench.proto",
}

// ack answers a one-way delivery with google.protobuf.Empty.
func ack(_ any, _ context.Context, dec func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
	var in []byte
	if err := dec(&in); err != nil {
		return nil, err
	}
	out := []byte{}
	return &out, nil
}

var soakDesc = grpc.ServiceDesc{
	ServiceName: "bench.v1.Soak",
	HandlerType: (*echoServer)(nil),
	Methods: []grpc.MethodDesc{
		{MethodName: "Open", Handler: echo},
		{MethodName: "Call", Handler: echo},
		{MethodName: "Notify", Handler: ack},
		{MethodName: "End", Handler: echo},
	},
	Metadata: "bench/v1/soak.proto",
}

var plainDesc = grpc.ServiceDesc{
	ServiceName: "bench.v1.Plain",
	HandlerType: (*echoServer)(nil),
	Methods:     []grpc.MethodDesc{{MethodName: "Call", Handler: echo}},
	Metadata:    "bench/v1/bench.proto",
}

func main() {
	encoding.RegisterCodec(rawCodec{})
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server := grpc.NewServer()
	server.RegisterService(&serviceDesc, struct{}{})
	server.RegisterService(&plainDesc, struct{}{})
	server.RegisterService(&soakDesc, struct{}{})
	ready, _ := json.Marshal(map[string]any{
		"type": "ready",
		"port": listener.Addr().(*net.TCPAddr).Port,
		"pid":  os.Getpid(),
	})
	fmt.Println(string(ready))
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		server.Stop()
	}()
	if err := server.Serve(listener); err != nil && err != grpc.ErrServerStopped {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
