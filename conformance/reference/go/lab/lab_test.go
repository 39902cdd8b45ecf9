package lab

import (
	"context"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	pb "sessionbridge.dev/conformance/lab-go/gen/sessionbridge/conformance/v1"
)

// clock is a settable time for expiry tests: nothing here waits for real time to pass.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func openLab(t *testing.T, dir string, scale float64, clk *clock) *Lab {
	t.Helper()
	opts := Options{StateDir: dir, TimeScale: scale}
	if clk != nil {
		opts.Now = clk.Now
	}
	l, err := Open(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

type facts struct {
	service, session, messageID string
	seq                         uint64
}

func call(method string, f facts) *Call {
	service := f.service
	if service == "" {
		service = LabService
	}
	h := map[string][]string{}
	if f.session != "" {
		h[HeaderSessionID] = []string{f.session}
	}
	if f.messageID != "" {
		h[HeaderMessageID] = []string{f.messageID}
	}
	if f.seq > 0 {
		h[HeaderSeq] = []string{uitoa(f.seq)}
	}
	return NewCall(service, method, TransportGRPC, h, true, time.Time{}, time.Now())
}

func uitoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func act(appendEntries ...string) *pb.ActRequest {
	return &pb.ActRequest{Instruction: &pb.Instruction{Append: appendEntries}}
}

func open(appendEntries ...string) *pb.OpenRequest {
	return &pb.OpenRequest{Instruction: &pb.Instruction{Append: appendEntries}}
}

func mustReply(t *testing.T, out *Outcome) *pb.LabReply {
	t.Helper()
	if out.Fault != nil {
		t.Fatalf("unexpected fault %v (reason %s)", out.Fault, out.Fault.Reason())
	}
	return out.Reply.(*pb.LabReply)
}

func mustFault(t *testing.T, out *Outcome, code codes.Code, reason string) {
	t.Helper()
	if out.Fault == nil {
		t.Fatalf("expected %s %s, got reply %v", code, reason, out.Reply)
	}
	if out.Fault.Code() != code || out.Fault.Reason() != reason {
		t.Fatalf("expected %s %s, got %s %s", code, reason, out.Fault.Code(), out.Fault.Reason())
	}
}

func equalLog(t *testing.T, got []string, want ...string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("log %q, want %q", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("log %q, want %q", got, want)
		}
	}
}

func TestLogsAreKeptPerSession(t *testing.T) { // S1
	l := openLab(t, "", 0, nil)
	ctx := context.Background()
	mustReply(t, l.Unary(ctx, call("Open", facts{session: "a"}), open("a1")))
	mustReply(t, l.Unary(ctx, call("Open", facts{session: "b"}), open("b1")))
	equalLog(t, mustReply(t, l.Unary(ctx, call("Act", facts{session: "a"}), act("a2"))).Log, "a1", "a2")
	equalLog(t, mustReply(t, l.Unary(ctx, call("Act", facts{session: "b"}), act())).Log, "b1")
	// Open for a live id joins it and keeps its log (S3).
	equalLog(t, mustReply(t, l.Unary(ctx, call("Open", facts{session: "a"}), open())).Log, "a1", "a2")
}

func TestUnknownAndEndedSessions(t *testing.T) { // S4, S12
	l := openLab(t, "", 0, nil)
	ctx := context.Background()
	mustFault(t, l.Unary(ctx, call("Act", facts{session: "nobody"}), act("x")), codes.NotFound, ReasonCorrelationError)
	mustFault(t, l.Unary(ctx, call("Peek", facts{session: "nobody"}), act()), codes.NotFound, ReasonCorrelationError)
	// Nothing changed: the id is still unknown, so Open starts an empty log.
	equalLog(t, mustReply(t, l.Unary(ctx, call("Open", facts{session: "nobody"}), open())).Log)
	equalLog(t, mustReply(t, l.Unary(ctx, call("Finish", facts{session: "nobody"}), act("last"))).Log, "last")
	mustFault(t, l.Unary(ctx, call("Act", facts{session: "nobody"}), act()), codes.NotFound, ReasonSessionClosed)
	mustFault(t, l.Unary(ctx, call("Open", facts{session: "nobody"}), open()), codes.NotFound, ReasonSessionClosed)
}

func TestIdleSessionsExpireWithTheTimeScale(t *testing.T) { // S12
	clk := &clock{now: time.Unix(1_000_000, 0)}
	l := openLab(t, "", 0.001, clk) // 600000 ms idle becomes 600 ms
	ctx := context.Background()
	mustReply(t, l.Unary(ctx, call("Open", facts{session: "s"}), open()))
	clk.Advance(599 * time.Millisecond)
	mustReply(t, l.Unary(ctx, call("Act", facts{session: "s"}), act("kept")))
	clk.Advance(599 * time.Millisecond)
	mustReply(t, l.Unary(ctx, call("Peek", facts{session: "s"}), act()))
	clk.Advance(600 * time.Millisecond)
	mustFault(t, l.Unary(ctx, call("Act", facts{session: "s"}), act()), codes.NotFound, ReasonSessionExpired)
}

func TestSequenceNumbers(t *testing.T) { // S7
	l := openLab(t, "", 0, nil)
	ctx := context.Background()
	mustReply(t, l.Unary(ctx, call("Open", facts{session: "s"}), open()))
	equalLog(t, mustReply(t, l.Unary(ctx, call("Act", facts{session: "s", seq: 1}), act("one"))).Log, "one")
	again := mustReply(t, l.Unary(ctx, call("Act", facts{session: "s", seq: 1}), act("other")))
	equalLog(t, again.Log, "one")
	if !again.Replayed {
		t.Fatal("a duplicate number must be answered as a replay")
	}
	out := l.Unary(ctx, call("Act", facts{session: "s", seq: 3}), act("three"))
	mustFault(t, out, codes.FailedPrecondition, ReasonOutOfSequence)
	equalLog(t, mustReply(t, l.Unary(ctx, call("Act", facts{session: "s", seq: 2}), act("two"))).Log, "one", "two")
	// A fault is a recorded outcome too: the number is taken.
	failing := act("never")
	failing.Instruction.Fail = &pb.Failure{Code: int32(codes.Aborted), Message: "no", Reason: "NOPE"}
	mustFault(t, l.Unary(ctx, call("Act", facts{session: "s", seq: 3}), failing), codes.Aborted, "NOPE")
	mustFault(t, l.Unary(ctx, call("Act", facts{session: "s", seq: 3}), act("retry")), codes.Aborted, "NOPE")
	equalLog(t, mustReply(t, l.Unary(ctx, call("Peek", facts{session: "s"}), act())).Log, "one", "two")
}

func TestRedeliveredMessageIDsAreNotAppliedTwice(t *testing.T) { // S10
	l := openLab(t, "", 0, nil)
	ctx := context.Background()
	mustReply(t, l.Unary(ctx, call("Open", facts{session: "s"}), open()))
	observe := act("x")
	observe.Instruction.Observe = true
	first := mustReply(t, l.Unary(ctx, call("Act", facts{session: "s", messageID: "m1"}), observe))
	second := mustReply(t, l.Unary(ctx, call("Act", facts{session: "s", messageID: "m1"}), observe))
	equalLog(t, second.Log, "x")
	if first.Replayed || !second.Replayed {
		t.Fatalf("replayed: first %v, second %v", first.Replayed, second.Replayed)
	}
	if first.Observed.DeliveryCount != 1 || second.Observed.DeliveryCount != 2 {
		t.Fatalf("delivery counts %d, %d", first.Observed.DeliveryCount, second.Observed.DeliveryCount)
	}
	// A one-way message too.
	if out := l.Unary(ctx, call("Post", facts{session: "s", messageID: "m2"}), act("y")); out.Fault != nil {
		t.Fatal(out.Fault)
	}
	if out := l.Unary(ctx, call("Post", facts{session: "s", messageID: "m2"}), act("y")); out.Fault != nil {
		t.Fatal(out.Fault)
	}
	equalLog(t, mustReply(t, l.Unary(ctx, call("Peek", facts{session: "s"}), act())).Log, "x", "y")
}

func TestFailFirstDeliveries(t *testing.T) { // S11
	l := openLab(t, "", 0, nil)
	ctx := context.Background()
	mustReply(t, l.Unary(ctx, call("Open", facts{session: "s"}), open()))
	req := act("once")
	req.Instruction.FailFirstDeliveries = 2
	for range 2 {
		mustFault(t, l.Unary(ctx, call("Post", facts{session: "s", messageID: "p"}), req), codes.Unavailable, ReasonFirstDeliveries)
	}
	if out := l.Unary(ctx, call("Post", facts{session: "s", messageID: "p"}), req); out.Fault != nil {
		t.Fatal(out.Fault)
	}
	equalLog(t, mustReply(t, l.Unary(ctx, call("Peek", facts{session: "s"}), act())).Log, "once")
}

func TestDeadlineAbandonsTheSleep(t *testing.T) { // S15
	l := openLab(t, "", 0, nil)
	mustReply(t, l.Unary(context.Background(), call("Open", facts{session: "s"}), open()))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	req := act("late")
	req.Instruction.SleepMs = 600_000
	mustFault(t, l.Unary(ctx, call("Act", facts{session: "s"}), req), codes.DeadlineExceeded, ReasonDeadlineExceeded)
	cancelled, cancelNow := context.WithCancel(context.Background())
	cancelNow()
	mustFault(t, l.Unary(cancelled, call("Act", facts{session: "s"}), req), codes.Canceled, ReasonCancelled)
	equalLog(t, mustReply(t, l.Unary(context.Background(), call("Peek", facts{session: "s"}), act())).Log)
}

func TestInstructedFaultCarriesReasonAndDetails(t *testing.T) { // S14
	l := openLab(t, "", 0, nil)
	detail, _ := anypb.New(wrapperspb.String("extra"))
	req := act()
	req.Instruction.Fail = &pb.Failure{Code: int32(codes.ResourceExhausted), Message: "tab\there\r\n😀", Reason: "FULL", Details: []*anypb.Any{detail}}
	out := l.Unary(context.Background(), call("Ping", facts{service: PingLabService}), req)
	mustFault(t, out, codes.ResourceExhausted, "FULL")
	st := out.Fault.Status
	if st.GetMessage() != "tab\there\r\n😀" || len(st.GetDetails()) != 2 || !proto.Equal(st.GetDetails()[1], detail) {
		t.Fatalf("status %v", st)
	}
	bad := act()
	bad.Instruction.Fail = &pb.Failure{Code: 0}
	mustFault(t, l.Unary(context.Background(), call("Ping", facts{service: PingLabService}), bad), codes.InvalidArgument, ReasonInvalidRequest)
}

func TestSingleServiceHasOneLiveSession(t *testing.T) { // S3, S6
	l := openLab(t, "", 0, nil)
	ctx := context.Background()
	mustReply(t, l.Unary(ctx, call("Open", facts{service: SingleLabService, session: "one"}), open()))
	mustFault(t, l.Unary(ctx, call("Open", facts{service: SingleLabService, session: "two"}), open()), codes.AlreadyExists, ReasonAlreadyExists)
	mustFault(t, l.Unary(ctx, call("Open", facts{service: SingleLabService, session: "one"}), open()), codes.AlreadyExists, ReasonAlreadyExists)
	mustReply(t, l.Unary(ctx, call("Finish", facts{service: SingleLabService, session: "one"}), act()))
	mustReply(t, l.Unary(ctx, call("Open", facts{service: SingleLabService, session: "two"}), open()))
}

func TestStateSurvivesReopen(t *testing.T) { // S9, S10
	dir := t.TempDir()
	ctx := context.Background()
	first, err := Open(Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	mustReply(t, first.Unary(ctx, call("Open", facts{session: "s"}), open("a")))
	mustReply(t, first.Unary(ctx, call("Act", facts{session: "s", seq: 1, messageID: "m1"}), act("b")))
	if out := first.Unary(ctx, call("Post", facts{session: "s", messageID: "m2"}), act("c")); out.Fault != nil {
		t.Fatal(out.Fault)
	}
	_ = first.Close()

	second := openLab(t, dir, 0, nil)
	if second.Incarnation() != first.Incarnation()+1 {
		t.Fatalf("incarnation %d after %d", second.Incarnation(), first.Incarnation())
	}
	equalLog(t, mustReply(t, second.Unary(ctx, call("Peek", facts{session: "s"}), act())).Log, "a", "b", "c")
	replayed := mustReply(t, second.Unary(ctx, call("Act", facts{session: "s", seq: 1}), act("b")))
	if !replayed.Replayed {
		t.Fatal("the sequence record was lost")
	}
	replayed = mustReply(t, second.Unary(ctx, call("Act", facts{session: "s", messageID: "m1"}), act("b")))
	if !replayed.Replayed {
		t.Fatal("the message id record was lost")
	}
	mustFault(t, second.Unary(ctx, call("Act", facts{session: "s", seq: 3}), act()), codes.FailedPrecondition, ReasonOutOfSequence)
}

func TestTornJournalTailIsCut(t *testing.T) { // S10: an unanswered half-written entry is dropped
	dir := t.TempDir()
	ctx := context.Background()
	first, err := Open(Options{StateDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	mustReply(t, first.Unary(ctx, call("Open", facts{session: "s"}), open("kept")))
	_ = first.Close()
	appendRaw(t, dir, `{"k":"apply","s":"`+LabService+`","i":"s","a":["torn"`)
	second := openLab(t, dir, 0, nil)
	mustReply(t, second.Unary(ctx, call("Act", facts{session: "s"}), act("after")))
	_ = second.Close()
	third := openLab(t, dir, 0, nil)
	equalLog(t, mustReply(t, third.Unary(ctx, call("Peek", facts{session: "s"}), act())).Log, "kept", "after")
}

func TestPeekMayNotAppend(t *testing.T) {
	l := openLab(t, "", 0, nil)
	mustReply(t, l.Unary(context.Background(), call("Open", facts{session: "s"}), open()))
	mustFault(t, l.Unary(context.Background(), call("Peek", facts{session: "s"}), act("x")), codes.InvalidArgument, ReasonInvalidRequest)
	mustFault(t, l.Unary(context.Background(), call("Ping", facts{service: PingLabService}), act("x")), codes.InvalidArgument, ReasonInvalidRequest)
}
