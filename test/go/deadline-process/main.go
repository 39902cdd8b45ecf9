// sb-deadline-process: a grpc-go server for S15 tests of deadlines the process gives up on
// itself. Every method named .../Do takes its request and never answers: it waits past the
// deadline the caller sent (grpc-timeout), so grpc-go's own deadline timer resets the
// stream with RST_STREAM(CANCEL) and no status. Any other method answers an empty message
// at once (an empty message is a valid one of every type). It serves any service by name
// (an unknown-service handler with a codec that passes bytes through), so it needs no
// generated code.
//
// Usage: sb-deadline-process <dir>. It listens on 127.0.0.1 and prints the port on one
// line. For each Do call it creates <dir>/received once the request has arrived and
// <dir>/expired once its deadline has passed and the reset has gone out, so a test can
// wait for either without reading the process's output.
package main

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// rawCodec passes message bytes through untouched.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) { return *(v.(*[]byte)), nil }

func (rawCodec) Unmarshal(data []byte, v any) error {
	*(v.(*[]byte)) = append([]byte(nil), data...)
	return nil
}

func (rawCodec) Name() string { return "proto" }

// afterReset is how long the handler waits after its deadline before it says so: grpc-go
// resets the stream from a timer of its own, which needs a moment to reach the wire.
const afterReset = 200 * time.Millisecond

// holdAfter is how much longer the handler lives after that, answering nothing.
const holdAfter = 5 * time.Second

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: sb-deadline-process <dir>")
		os.Exit(2)
	}
	dir := os.Args[1]
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	server := grpc.NewServer(
		grpc.ForceServerCodec(rawCodec{}),
		grpc.UnknownServiceHandler(func(_ any, stream grpc.ServerStream) error {
			method, _ := grpc.MethodFromServerStream(stream)
			var in []byte
			if err := stream.RecvMsg(&in); err != nil {
				return err
			}
			if !strings.HasSuffix(method, "/Do") {
				out := []byte{}
				return stream.SendMsg(&out)
			}
			ctx := stream.Context()
			mark(dir, "received")
			deadline, ok := ctx.Deadline()
			if !ok {
				return status.Error(codes.FailedPrecondition, "Do needs a deadline")
			}
			<-ctx.Done()
			// Cancelled by the caller rather than by the deadline: nothing to report.
			if time.Now().Before(deadline) {
				return status.FromContextError(ctx.Err()).Err()
			}
			time.Sleep(afterReset)
			mark(dir, "expired")
			// The stream is reset already: whatever is returned now is never sent.
			time.Sleep(holdAfter)
			return status.Error(codes.Internal, "answered after the deadline")
		}),
	)
	fmt.Println(lis.Addr().(*net.TCPAddr).Port)
	if err := server.Serve(lis); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// mark creates dir/name, written whole under another name first so a reader never sees it half made.
func mark(dir, name string) {
	tmp := filepath.Join(dir, name+".tmp")
	if err := os.WriteFile(tmp, []byte(time.Now().Format(time.RFC3339Nano)), 0o600); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		fmt.Fprintln(os.Stderr, err)
	}
}
