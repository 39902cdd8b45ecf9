// Command sb-grpc-go-client is a grpc-go client the tests drive over stdin/stdout, so the
// session rules are checked against grpc-go's own wire behaviour (its grpc-timeout units,
// header casing, flow control) and not only grpc-js's.
//
// Usage: sb-grpc-go-client HOST:PORT
//
// Each stdin line is one JSON command:
//
//	{"id":1,"op":"call","kind":"unary|server_stream|client_stream|bidi","method":"/pkg.Svc/M",
//	 "requests":["<base64 protobuf>",...],"metadata":{"k":"v"},"timeout_ms":500}
//	{"id":1,"op":"cancel"}
//
// Calls run concurrently. Each stdout line is one JSON event for a call:
//
//	{"id":1,"event":"message","data":"<base64 protobuf>"}   one per response message
//	{"id":1,"event":"end","code":0,"message":"","details":"<base64 google.rpc.Status>",
//	 "headers":{"k":["v"]},"trailers":{"k":["v"]}}          exactly one, last
//
// Values of "-bin" metadata keys are base64 text both ways, as the bridge's own metadata
// form carries them.
package main

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// maxLineBytes bounds one command line: a call's requests travel inside it.
const maxLineBytes = 64 << 20

type command struct {
	ID        uint64            `json:"id"`
	Op        string            `json:"op"`
	Kind      string            `json:"kind"`
	Method    string            `json:"method"`
	Requests  [][]byte          `json:"requests"`
	Metadata  map[string]string `json:"metadata"`
	TimeoutMs *int64            `json:"timeout_ms"`
}

type event struct {
	ID       uint64              `json:"id"`
	Event    string              `json:"event"`
	Data     []byte              `json:"data,omitempty"`
	Code     *codes.Code         `json:"code,omitempty"`
	Message  string              `json:"message,omitempty"`
	Details  []byte              `json:"details,omitempty"`
	Headers  map[string][]string `json:"headers,omitempty"`
	Trailers map[string][]string `json:"trailers,omitempty"`
}

// rawCodec passes protobuf bytes through untouched: the test side encodes and decodes.
type rawCodec struct{}

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

func (rawCodec) Name() string { return "proto" }

type output struct {
	mu  sync.Mutex
	enc *json.Encoder
	w   *bufio.Writer
}

func (o *output) send(e event) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.enc.Encode(e); err != nil {
		fmt.Fprintln(os.Stderr, "write:", err)
		os.Exit(1)
	}
	if err := o.w.Flush(); err != nil {
		fmt.Fprintln(os.Stderr, "flush:", err)
		os.Exit(1)
	}
}

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: sb-grpc-go-client HOST:PORT")
		os.Exit(2)
	}
	conn, err := grpc.NewClient(os.Args[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		fmt.Fprintln(os.Stderr, "dial:", err)
		os.Exit(1)
	}
	defer conn.Close()

	w := bufio.NewWriter(os.Stdout)
	out := &output{enc: json.NewEncoder(w), w: w}
	base, stop := context.WithCancel(context.Background())
	defer stop()

	var mu sync.Mutex
	cancels := map[uint64]context.CancelFunc{}
	var running sync.WaitGroup

	scanner := bufio.NewScanner(os.Stdin)
	scanner.Buffer(make([]byte, 64<<10), maxLineBytes)
	for scanner.Scan() {
		var cmd command
		if err := json.Unmarshal(scanner.Bytes(), &cmd); err != nil {
			fmt.Fprintln(os.Stderr, "bad command:", err)
			os.Exit(2)
		}
		switch cmd.Op {
		case "cancel":
			mu.Lock()
			if cancel, ok := cancels[cmd.ID]; ok {
				cancel()
			}
			mu.Unlock()
		case "call":
			ctx, cancel := context.WithCancel(base)
			if cmd.TimeoutMs != nil {
				// A real deadline: grpc-go picks the grpc-timeout unit itself (S15).
				ctx, cancel = context.WithTimeout(base, time.Duration(*cmd.TimeoutMs)*time.Millisecond)
			}
			mu.Lock()
			cancels[cmd.ID] = cancel
			mu.Unlock()
			// Calls with one request open their stream and send it here, in command order:
			// a client pipelining numbered calls (S7) puts them on the wire in the order it
			// made them. Streams of many requests send from their own goroutine, so one
			// that the server does not read cannot hold up the others.
			var opened *openCall
			if cmd.Kind == "unary" || cmd.Kind == "server_stream" {
				opened = open(ctx, conn, cmd)
			}
			running.Add(1)
			go func() {
				defer running.Done()
				if opened == nil {
					opened = open(ctx, conn, cmd)
				}
				out.send(opened.finish(out))
				cancel()
				mu.Lock()
				delete(cancels, cmd.ID)
				mu.Unlock()
			}()
		default:
			fmt.Fprintln(os.Stderr, "unknown op:", cmd.Op)
			os.Exit(2)
		}
	}
	if err := scanner.Err(); err != nil {
		fmt.Fprintln(os.Stderr, "read:", err)
		os.Exit(1)
	}
	// stdin closed: calls still running are cancelled and report their end.
	stop()
	running.Wait()
}

// openCall is a call whose requests are sent; finish reads its responses and status.
type openCall struct {
	id     uint64
	desc   *grpc.StreamDesc
	stream grpc.ClientStream
	failed *event
}

func open(ctx context.Context, conn *grpc.ClientConn, cmd command) *openCall {
	fail := func(st *status.Status) *openCall {
		e := end(cmd.ID, st, nil, nil)
		return &openCall{id: cmd.ID, failed: &e}
	}
	desc := &grpc.StreamDesc{StreamName: cmd.Method}
	switch cmd.Kind {
	case "unary":
	case "server_stream":
		desc.ServerStreams = true
	case "client_stream":
		desc.ClientStreams = true
	case "bidi":
		desc.ServerStreams, desc.ClientStreams = true, true
	default:
		return fail(status.Newf(codes.Internal, "unknown call kind %q", cmd.Kind))
	}
	md := metadata.MD{}
	for k, v := range cmd.Metadata {
		if strings.HasSuffix(k, "-bin") {
			raw, err := base64.StdEncoding.DecodeString(v)
			if err != nil {
				return fail(status.Newf(codes.Internal, "metadata %s: %v", k, err))
			}
			v = string(raw)
		}
		md.Append(k, v)
	}
	ctx = metadata.NewOutgoingContext(ctx, md)
	stream, err := conn.NewStream(ctx, desc, cmd.Method, grpc.ForceCodec(rawCodec{}))
	if err != nil {
		return fail(status.Convert(err))
	}
	for _, req := range cmd.Requests {
		if err := stream.SendMsg(&req); err != nil {
			// io.EOF: the server ended the call; its status comes from RecvMsg.
			break
		}
	}
	_ = stream.CloseSend()
	return &openCall{id: cmd.ID, desc: desc, stream: stream}
}

func (c *openCall) finish(out *output) event {
	if c.failed != nil {
		return *c.failed
	}
	var final error
	for {
		var msg []byte
		err := c.stream.RecvMsg(&msg)
		if err != nil {
			final = err
			break
		}
		out.send(event{ID: c.id, Event: "message", Data: msg})
		if !c.desc.ServerStreams {
			break
		}
	}
	var st *status.Status
	if final == nil || errors.Is(final, io.EOF) {
		st = status.New(codes.OK, "")
	} else {
		st = status.Convert(final)
	}
	headers, _ := c.stream.Header()
	return end(c.id, st, headers, c.stream.Trailer())
}

func end(id uint64, st *status.Status, headers, trailers metadata.MD) event {
	code := st.Code()
	e := event{ID: id, Event: "end", Code: &code, Message: st.Message(), Headers: plain(headers), Trailers: plain(trailers)}
	if code != codes.OK {
		if b, err := proto.Marshal(st.Proto()); err == nil {
			e.Details = b
		}
	}
	return e
}

// plain gives binary values back as base64 text.
func plain(md metadata.MD) map[string][]string {
	if len(md) == 0 {
		return nil
	}
	m := make(map[string][]string, len(md))
	for k, vs := range md {
		if strings.HasSuffix(k, "-bin") {
			enc := make([]string, len(vs))
			for i, v := range vs {
				enc[i] = base64.StdEncoding.EncodeToString([]byte(v))
			}
			m[k] = enc
			continue
		}
		m[k] = vs
	}
	return m
}
