// Command compression runs the four compression cases of gRPC's interop test
// descriptions (client_compressed_unary, server_compressed_unary,
// client_compressed_streaming, server_compressed_streaming), which grpc-go's own interop
// client and server do not implement, on grpc-go: "compression server" serves grpc-go's
// interop TestService on 127.0.0.1 and a free port (printing "port N"), adding the
// expect_compressed and response_compressed handling; and
// "compression client --server=HOST:PORT --test_case=NAME" runs one case against it,
// directly or through a proxy. Whether a message travelled compressed is read from
// grpc-go's stats (a compressed message's wire length differs from its length).
//
// One deviation, forced by grpc-go: compression is chosen per call, not per message, so
// a call that compresses sends all its messages compressed. client_compressed_streaming
// therefore sends its second message compressed (the server checks only messages that
// expect compression), and server_compressed_streaming checks the first response only.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/encoding/gzip"
	"google.golang.org/grpc/interop"
	testgrpc "google.golang.org/grpc/interop/grpc_testing"
	testpb "google.golang.org/grpc/interop/grpc_testing"
	"google.golang.org/grpc/stats"
	"google.golang.org/grpc/status"
)

func main() {
	if len(os.Args) < 2 {
		fail("usage: compression server | compression client --server=HOST:PORT --test_case=NAME")
	}
	switch os.Args[1] {
	case "server":
		serve()
	case "client":
		flags := flag.NewFlagSet("client", flag.ExitOnError)
		server := flags.String("server", "", "host:port")
		testCase := flags.String("test_case", "", "the case to run")
		_ = flags.Parse(os.Args[2:])
		if err := runCase(*server, *testCase); err != nil {
			fail(fmt.Sprintf("%s: %v", *testCase, err))
		}
	default:
		fail("unknown command " + os.Args[1])
	}
}

func fail(message string) {
	fmt.Fprintln(os.Stderr, message)
	os.Exit(1)
}

// compressedKey finds the flag of the last message received on a call.
type compressedKey struct{}

// lastCompressed records, per call, whether its last received message came compressed.
type lastCompressed struct{ atomic.Bool }

type compressionStats struct{}

func (compressionStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context {
	return context.WithValue(ctx, compressedKey{}, &lastCompressed{})
}

func (compressionStats) HandleRPC(ctx context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InPayload); ok {
		if last, ok := ctx.Value(compressedKey{}).(*lastCompressed); ok {
			last.Store(in.CompressedLength != in.Length)
		}
	}
}

func (compressionStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context {
	return ctx
}
func (compressionStats) HandleConn(context.Context, stats.ConnStats) {}

func wasCompressed(ctx context.Context) bool {
	last, ok := ctx.Value(compressedKey{}).(*lastCompressed)
	return ok && last.Load()
}

// server is grpc-go's interop TestService, with the compression checks added.
type server struct {
	testgrpc.TestServiceServer
}

func (s server) UnaryCall(ctx context.Context, req *testpb.SimpleRequest) (*testpb.SimpleResponse, error) {
	if req.GetExpectCompressed().GetValue() && !wasCompressed(ctx) {
		return nil, status.Error(codes.InvalidArgument, "expected a compressed request")
	}
	if req.GetResponseCompressed().GetValue() {
		if err := grpc.SetSendCompressor(ctx, gzip.Name); err != nil {
			return nil, err
		}
	}
	return s.TestServiceServer.UnaryCall(ctx, req)
}

func (s server) StreamingInputCall(stream testgrpc.TestService_StreamingInputCallServer) error {
	sum := 0
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return stream.SendAndClose(&testpb.StreamingInputCallResponse{AggregatedPayloadSize: int32(sum)})
		}
		if err != nil {
			return err
		}
		if req.GetExpectCompressed().GetValue() && !wasCompressed(stream.Context()) {
			return status.Error(codes.InvalidArgument, "expected a compressed request")
		}
		sum += len(req.GetPayload().GetBody())
	}
}

func (s server) StreamingOutputCall(req *testpb.StreamingOutputCallRequest, stream testgrpc.TestService_StreamingOutputCallServer) error {
	params := req.GetResponseParameters()
	if len(params) > 0 && params[0].GetCompressed().GetValue() {
		if err := grpc.SetSendCompressor(stream.Context(), gzip.Name); err != nil {
			return err
		}
	}
	return s.TestServiceServer.StreamingOutputCall(req, stream)
}

func serve() {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fail(err.Error())
	}
	srv := grpc.NewServer(grpc.StatsHandler(compressionStats{}))
	testgrpc.RegisterTestServiceServer(srv, server{interop.NewTestServer()})
	fmt.Printf("port %d\n", lis.Addr().(*net.TCPAddr).Port)
	if err := srv.Serve(lis); err != nil {
		fail(err.Error())
	}
}

// clientStats records whether each received message came compressed, in order.
type clientStats struct{ received chan bool }

func (c clientStats) TagRPC(ctx context.Context, _ *stats.RPCTagInfo) context.Context { return ctx }
func (c clientStats) HandleRPC(_ context.Context, s stats.RPCStats) {
	if in, ok := s.(*stats.InPayload); ok {
		c.received <- in.CompressedLength != in.Length
	}
}
func (c clientStats) TagConn(ctx context.Context, _ *stats.ConnTagInfo) context.Context { return ctx }
func (c clientStats) HandleConn(context.Context, stats.ConnStats)                       {}

func boolValue(value bool) *testpb.BoolValue { return &testpb.BoolValue{Value: value} }

func payload(size int) *testpb.Payload {
	return &testpb.Payload{Type: testpb.PayloadType_COMPRESSABLE, Body: make([]byte, size)}
}

func runCase(address, testCase string) error {
	seen := clientStats{received: make(chan bool, 16)}
	conn, err := grpc.NewClient(address,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(seen))
	if err != nil {
		return err
	}
	defer conn.Close()
	client := testgrpc.NewTestServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	drain := func() {
		for len(seen.received) > 0 {
			<-seen.received
		}
	}
	switch testCase {
	case "client_compressed_unary":
		expect := &testpb.SimpleRequest{ResponseSize: 314159, Payload: payload(271828), ExpectCompressed: boolValue(true)}
		// The probe: an uncompressed request that claims compression is refused.
		if _, err := client.UnaryCall(ctx, expect); status.Code(err) != codes.InvalidArgument {
			return fmt.Errorf("probe: want InvalidArgument, got %v", err)
		}
		resp, err := client.UnaryCall(ctx, expect, grpc.UseCompressor(gzip.Name))
		if err != nil || len(resp.GetPayload().GetBody()) != 314159 {
			return fmt.Errorf("compressed request: %v", err)
		}
		plain := &testpb.SimpleRequest{ResponseSize: 314159, Payload: payload(271828), ExpectCompressed: boolValue(false)}
		if resp, err = client.UnaryCall(ctx, plain); err != nil || len(resp.GetPayload().GetBody()) != 314159 {
			return fmt.Errorf("uncompressed request: %v", err)
		}
	case "server_compressed_unary":
		for _, compressed := range []bool{true, false} {
			drain()
			req := &testpb.SimpleRequest{ResponseSize: 314159, Payload: payload(271828), ResponseCompressed: boolValue(compressed)}
			resp, err := client.UnaryCall(ctx, req)
			if err != nil || len(resp.GetPayload().GetBody()) != 314159 {
				return fmt.Errorf("response_compressed=%v: %v", compressed, err)
			}
			if got := <-seen.received; got != compressed {
				return fmt.Errorf("response_compressed=%v: the response came compressed=%v", compressed, got)
			}
		}
	case "client_compressed_streaming":
		probe, err := client.StreamingInputCall(ctx)
		if err != nil {
			return err
		}
		if err := probe.Send(&testpb.StreamingInputCallRequest{Payload: payload(27182), ExpectCompressed: boolValue(true)}); err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if _, err := probe.CloseAndRecv(); status.Code(err) != codes.InvalidArgument {
			return fmt.Errorf("probe: want InvalidArgument, got %v", err)
		}
		stream, err := client.StreamingInputCall(ctx, grpc.UseCompressor(gzip.Name))
		if err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingInputCallRequest{Payload: payload(27182), ExpectCompressed: boolValue(true)}); err != nil {
			return err
		}
		if err := stream.Send(&testpb.StreamingInputCallRequest{Payload: payload(45904), ExpectCompressed: boolValue(false)}); err != nil {
			return err
		}
		resp, err := stream.CloseAndRecv()
		if err != nil || resp.GetAggregatedPayloadSize() != 73086 {
			return fmt.Errorf("compressed stream: %v, size %d", err, resp.GetAggregatedPayloadSize())
		}
	case "server_compressed_streaming":
		drain()
		stream, err := client.StreamingOutputCall(ctx, &testpb.StreamingOutputCallRequest{
			ResponseParameters: []*testpb.ResponseParameters{
				{Size: 31415, Compressed: boolValue(true)},
				{Size: 92653, Compressed: boolValue(false)},
			},
		})
		if err != nil {
			return err
		}
		sizes := []int{}
		for {
			resp, err := stream.Recv()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return err
			}
			sizes = append(sizes, len(resp.GetPayload().GetBody()))
		}
		if len(sizes) != 2 || sizes[0] != 31415 || sizes[1] != 92653 {
			return fmt.Errorf("got responses of sizes %v", sizes)
		}
		if first := <-seen.received; !first {
			return fmt.Errorf("the first response did not come compressed")
		}
	default:
		return fmt.Errorf("unknown test case %q", testCase)
	}
	return nil
}
