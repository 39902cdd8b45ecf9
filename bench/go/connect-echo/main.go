// The Go Connect echo process: bench.v1.Echo and bench.v1.Plain on connect-go over
// HTTP/1.1 and h2c on one port, the direct path of the Connect rows (a Go server, so the
// direct path is not what limits them). Like the grpc-go echo it needs no generated code:
// a codec registered as "proto" hands raw message bytes to the handlers, which read field
// 2 (payload) of EchoRequest and answer EchoReply{payload}.
// Prints {"type":"ready","port":…,"pid":…} once listening; exits when stdin closes.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"

	"connectrpc.com/connect"
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
		return []byte{}, nil
	}
	out := make([]byte, 0, len(payload)+8)
	out = protowire.AppendTag(out, 1, protowire.BytesType)
	return protowire.AppendBytes(out, payload), nil
}

func echo(_ context.Context, request *connect.Request[[]byte]) (*connect.Response[[]byte], error) {
	out, err := reply(*request.Msg)
	if err != nil {
		return nil, connect.NewError(connect.CodeInvalidArgument, err)
	}
	return connect.NewResponse(&out), nil
}

func main() {
	mux := http.NewServeMux()
	codec := connect.WithCodec(rawCodec{})
	for _, procedure := range []string{
		"/bench.v1.Echo/Open",
		"/bench.v1.Echo/Call",
		"/bench.v1.Echo/Read",
		"/bench.v1.Plain/Call",
	} {
		mux.Handle(procedure, connect.NewUnaryHandler(procedure, echo, codec))
	}
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	protocols := new(http.Protocols)
	protocols.SetHTTP1(true)
	protocols.SetUnencryptedHTTP2(true)
	server := &http.Server{Handler: mux, Protocols: protocols}
	ready, _ := json.Marshal(map[string]any{
		"type": "ready",
		"port": listener.Addr().(*net.TCPAddr).Port,
		"pid":  os.Getpid(),
	})
	fmt.Println(string(ready))
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		_ = server.Close()
	}()
	if err := server.Serve(listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
