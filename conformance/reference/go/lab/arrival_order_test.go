package lab

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"testing"
	"time"

	"golang.org/x/net/http2"
	"golang.org/x/net/http2/hpack"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/protobuf/proto"

	pb "sessionbridge.dev/conformance/lab-go/gen/sessionbridge/conformance/v1"
)

// serveGRPC serves l over grpc-go on 127.0.0.1 as the harness does, with a client.
func serveGRPC(t *testing.T, l *Lab) (string, pb.LabServiceClient) {
	t.Helper()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer(GRPCServerOptions(l)...)
	RegisterGRPC(s, l)
	go func() { _ = s.Serve(lis) }()
	t.Cleanup(s.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return lis.Addr().String(), pb.NewLabServiceClient(conn)
}

// rawStream is one gRPC request as HTTP/2 frames: its headers and one message.
type rawStream struct {
	path    string
	headers map[string]string
	body    []byte
}

// sendBackToBack writes every request's HEADERS and DATA in one write on one new
// connection, so the server reads them in that order and as fast as it can, and
// returns the grpc-status of each once all have ended. Nothing here depends on timing:
// the order on the wire is fixed before the first byte leaves.
func sendBackToBack(t *testing.T, address string, streams []rawStream) []string {
	t.Helper()
	conn, err := net.Dial("tcp", address)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var out bytes.Buffer
	out.WriteString(http2.ClientPreface)
	framer := http2.NewFramer(&out, nil)
	if err := framer.WriteSettings(); err != nil {
		t.Fatal(err)
	}
	var block bytes.Buffer
	enc := hpack.NewEncoder(&block)
	for i, s := range streams {
		block.Reset()
		fields := [][2]string{
			{":method", "POST"}, {":scheme", "http"}, {":path", s.path}, {":authority", address},
			{"content-type", "application/grpc"}, {"te", "trailers"},
		}
		for k, v := range s.headers {
			fields = append(fields, [2]string{k, v})
		}
		for _, f := range fields {
			if err := enc.WriteField(hpack.HeaderField{Name: f[0], Value: f[1]}); err != nil {
				t.Fatal(err)
			}
		}
		id := uint32(2*i + 1)
		if err := framer.WriteHeaders(http2.HeadersFrameParam{StreamID: id, BlockFragment: block.Bytes(), EndHeaders: true}); err != nil {
			t.Fatal(err)
		}
		msg := make([]byte, 5+len(s.body))
		binary.BigEndian.PutUint32(msg[1:], uint32(len(s.body)))
		copy(msg[5:], s.body)
		if err := framer.WriteData(id, true, msg); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Write(out.Bytes()); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetDeadline(time.Now().Add(60 * time.Second))
	reader := http2.NewFramer(conn, conn)
	reader.ReadMetaHeaders = hpack.NewDecoder(4096, nil)
	statuses := make([]string, len(streams))
	for ended := 0; ended < len(streams); {
		frame, err := reader.ReadFrame()
		if err != nil {
			t.Fatalf("reading the answers: %v", err)
		}
		switch f := frame.(type) {
		case *http2.SettingsFrame:
			if !f.IsAck() {
				_ = reader.WriteSettingsAck()
			}
		case *http2.PingFrame:
			if !f.IsAck() {
				_ = reader.WritePing(true, f.Data)
			}
		case *http2.MetaHeadersFrame:
			if f.StreamEnded() {
				statuses[(f.StreamID-1)/2] = "grpc-status " + valueOf(f, "grpc-status")
				ended++
			}
		case *http2.RSTStreamFrame:
			statuses[(f.StreamID-1)/2] = "reset " + f.ErrCode.String()
			ended++
		case *http2.GoAwayFrame:
			t.Fatalf("the server went away: %v", f.ErrCode)
		}
	}
	return statuses
}

func valueOf(f *http2.MetaHeadersFrame, name string) string {
	for _, field := range f.RegularFields() {
		if field.Name == name {
			return field.Value
		}
	}
	return ""
}

func marshal(t *testing.T, m proto.Message) []byte {
	t.Helper()
	b, err := proto.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func withSession(id string) context.Context {
	return metadata.AppendToOutgoingContext(context.Background(), HeaderSessionID, id)
}

// Calls pipelined on one connection arrive in stream order; grpc-go starts a goroutine
// per call, and the newest runnable goroutine tends to run first, so a service that
// takes the session's turn inside its handler applies them in reverse. The first one
// sleeps before it appends: whatever overtakes it shows in the log.
func TestPipelinedGRPCCallsAreAppliedInArrivalOrder(t *testing.T) { // S6
	l := openLab(t, "", 1, nil)
	address, client := serveGRPC(t, l)
	for round := 0; round < 5; round++ {
		session := fmt.Sprintf("pipelined-%d", round)
		if _, err := client.Open(withSession(session), open()); err != nil {
			t.Fatal(err)
		}
		var streams []rawStream
		var want []string
		for i := 0; i < 6; i++ {
			in := &pb.Instruction{Append: []string{strconv.Itoa(i)}}
			if i == 0 {
				in.SleepMs = 50
			}
			streams = append(streams, rawStream{
				path:    "/" + LabService + "/Act",
				headers: map[string]string{HeaderSessionID: session},
				body:    marshal(t, &pb.ActRequest{Instruction: in}),
			})
			want = append(want, strconv.Itoa(i))
		}
		for i, status := range sendBackToBack(t, address, streams) {
			if status != "grpc-status 0" {
				t.Fatalf("call %d answered %s", i, status)
			}
		}
		peek, err := client.Peek(withSession(session), &pb.ActRequest{})
		if err != nil {
			t.Fatal(err)
		}
		equalLog(t, peek.GetLog(), want...)
	}
}

// A call that takes its turn on arrival but never reaches the lab's handler (its
// message cannot be decoded) gives the turn back when its stream ends; otherwise every
// later call of the session would wait forever.
func TestATurnIsGivenBackWhenNoHandlerRuns(t *testing.T) { // S6
	l := openLab(t, "", 1, nil)
	address, client := serveGRPC(t, l)
	session := "undecodable"
	if _, err := client.Open(withSession(session), open()); err != nil {
		t.Fatal(err)
	}
	statuses := sendBackToBack(t, address, []rawStream{
		{path: "/" + LabService + "/Act", headers: map[string]string{HeaderSessionID: session}, body: []byte{0xff, 0xff, 0xff}},
		{path: "/" + LabService + "/Act", headers: map[string]string{HeaderSessionID: session, "grpc-timeout": "1n"}, body: marshal(t, act("late"))},
	})
	if statuses[0] == "grpc-status 0" {
		t.Fatalf("an undecodable message was answered OK")
	}
	ctx, cancel := context.WithTimeout(withSession(session), 30*time.Second)
	defer cancel()
	reply, err := client.Act(ctx, act("next"))
	if err != nil {
		t.Fatalf("the next call of the session: %v", err)
	}
	l.turns.mu.Lock()
	left := len(l.turns.queues)
	l.turns.mu.Unlock()
	if left != 0 {
		t.Fatalf("turns left behind: %d queues", left)
	}
	// The call whose deadline had passed on arrival may or may not have run; the next
	// call ran after it, whichever it was.
	if log := reply.GetLog(); len(log) == 0 || log[len(log)-1] != "next" {
		t.Fatalf("log %q, want it to end with the next call", log)
	}
}

// A session's queue is bounded: beyond maxTicketsPerSession calls the next is refused
// at once, RESOURCE_EXHAUSTED, and another session is not affected.
func TestASessionsQueueIsBounded(t *testing.T) {
	l := openLab(t, "", 1, nil)
	held := make([]*ticket, 0, maxTicketsPerSession)
	for range maxTicketsPerSession {
		tk, f := l.takeTurn(LabService, "Act", "busy")
		if f != nil {
			t.Fatalf("refused below the bound: %v", f)
		}
		held = append(held, tk)
	}
	out := l.Unary(context.Background(), call("Act", facts{session: "busy"}), act("x"))
	mustFault(t, out, codes.ResourceExhausted, ReasonQueueFull)
	if _, f := l.takeTurn(LabService, "Act", "other"); f != nil {
		t.Fatalf("another session was refused: %v", f)
	}
	held[0].release()
	if tk, f := l.takeTurn(LabService, "Act", "busy"); f != nil || tk == nil {
		t.Fatalf("a place freed is taken again: %v", f)
	}
}

// queued is the number of calls of a session holding or waiting for its turn.
func queued(l *Lab, service, session string) int {
	l.turns.mu.Lock()
	defer l.turns.mu.Unlock()
	if q := l.turns.queues[sessionKey(service, session)]; q != nil {
		return q.tickets
	}
	return 0
}

// Over HTTP a request takes its turn once its headers are read, before its body is: a
// request of the session that arrives complete while the body of an earlier one is
// still on its way waits for it.
func TestAnHTTPRequestTakesItsTurnBeforeItsBodyArrives(t *testing.T) { // S6
	l := openLab(t, "", 1, nil)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := &http.Server{Handler: ConnectHandler(l), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = server.Serve(lis) }()
	t.Cleanup(func() { _ = server.Close() })
	base := "http://" + lis.Addr().String() + "/" + LabService + "/"
	post := func(method string, body []byte) (*http.Response, error) {
		req, err := http.NewRequest(http.MethodPost, base+method, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/proto")
		req.Header.Set(HeaderSessionID, "slow-body")
		return http.DefaultClient.Do(req)
	}
	res, err := post("Open", marshal(t, open()))
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("open: %v %v", err, res)
	}
	res.Body.Close()

	// The first request's headers, and no body yet.
	first, err := net.Dial("tcp", lis.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer first.Close()
	body := marshal(t, act("1"))
	fmt.Fprintf(first, "POST /%s/Act HTTP/1.1\r\nHost: lab\r\nContent-Type: application/proto\r\n%s: slow-body\r\nContent-Length: %d\r\n\r\n",
		LabService, HeaderSessionID, len(body))
	deadline := time.Now().Add(30 * time.Second)
	for queued(l, LabService, "slow-body") < 1 {
		if time.Now().After(deadline) {
			t.Fatal("the request whose body has not arrived took no turn")
		}
		time.Sleep(5 * time.Millisecond)
	}
	second := make(chan error, 1)
	go func() {
		res, err := post("Act", marshal(t, act("2")))
		if err == nil {
			res.Body.Close()
		}
		second <- err
	}()
	for queued(l, LabService, "slow-body") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the second request never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if _, err := first.Write(body); err != nil {
		t.Fatal(err)
	}
	answer, err := http.ReadResponse(bufio.NewReader(first), nil)
	if err != nil || answer.StatusCode != http.StatusOK {
		t.Fatalf("first: %v %v", err, answer)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	out := l.Unary(context.Background(), call("Peek", facts{session: "slow-body"}), &pb.ActRequest{})
	equalLog(t, mustReply(t, out).GetLog(), "1", "2")
}
