package lab

import (
	"context"
	"fmt"
	"sync"
	"time"

	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	pb "sessionbridge.dev/conformance/lab-go/gen/sessionbridge/conformance/v1"
	sbpb "sessionbridge.dev/conformance/lab-go/gen/sessionbridge/v1"
)

// The lab's services and the operations that behave specially.
const (
	Package              = "sessionbridge.conformance.v1"
	LabService           = Package + ".LabService"
	SequentialLabService = Package + ".SequentialLabService"
	SingleLabService     = Package + ".SingleLabService"
	// PingLabService has no session options: the bridge passes its calls through
	// without a session (docs/sessions.md "sessionless").
	PingLabService = Package + ".PingLabService"
)

// maxItemBytes bounds one stream item's payload: ItemsRequest.item_bytes comes from the
// client, and allocating whatever it asks is how a service falls over.
const maxItemBytes = 16 << 20

// Options configure a Lab.
type Options struct {
	// StateDir keeps the durable state (S9, S10); empty keeps everything in memory.
	StateDir string
	// TimeScale multiplies every idle timeout (S12); 0 means 1.
	TimeScale float64
	// Deviation is Conformant{} for the reference service.
	Deviation Deviation
	// Now is the clock for idle timeouts; time.Now when nil.
	Now func() time.Time
}

// Lab is the lab contract's state and logic, shared by every transport.
type Lab struct {
	dev         Deviation
	now         func() time.Time
	timeScale   float64
	journal     *journal
	incarnation uint64
	idle        map[string]time.Duration
	turns       *turns

	mu         sync.Mutex
	sessions   map[string]*session
	logs       map[string][]string
	deliveries map[string]uint32
}

type sessionState int

const (
	stateLive sessionState = iota
	stateClosed
	stateExpired
)

type session struct {
	service, id  string
	state        sessionState
	lastActivity time.Time
	// lastSeq is the highest sb-seq applied (S7).
	lastSeq   uint64
	bySeq     map[uint64]*outcome
	byMessage map[string]*outcome
}

// Open starts a lab on opts.StateDir, replaying what an earlier process made durable.
func Open(opts Options) (*Lab, error) {
	l := &Lab{
		dev:        opts.Deviation,
		now:        opts.Now,
		timeScale:  opts.TimeScale,
		turns:      newTurns(),
		sessions:   map[string]*session{},
		logs:       map[string][]string{},
		deliveries: map[string]uint32{},
		idle:       map[string]time.Duration{},
	}
	if l.dev == nil {
		l.dev = Conformant{}
	}
	if l.now == nil {
		l.now = time.Now
	}
	if l.timeScale <= 0 {
		l.timeScale = 1
	}
	for _, name := range []string{LabService, SequentialLabService, SingleLabService} {
		ms, err := idleTimeoutMs(name)
		if err != nil {
			return nil, err
		}
		l.idle[name] = time.Duration(float64(ms) * l.timeScale * float64(time.Millisecond))
	}
	if opts.StateDir == "" {
		l.incarnation = 1
		return l, nil
	}
	incarnation, err := nextIncarnation(opts.StateDir)
	if err != nil {
		return nil, fmt.Errorf("state dir: %w", err)
	}
	l.incarnation = incarnation
	j, err := openJournal(opts.StateDir, l.replayEntry)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	l.journal = j
	return l, nil
}

// Close closes the journal; calls still running fail to record and answer INTERNAL.
func (l *Lab) Close() error {
	if l.journal == nil {
		return nil
	}
	return l.journal.close()
}

// Incarnation is Observed.incarnation of this process.
func (l *Lab) Incarnation() uint64 { return l.incarnation }

// idleTimeoutMs reads a service's idle timeout from its contract's options, so the lab
// expires sessions by the same number the bridge reads (S12).
func idleTimeoutMs(service string) (uint64, error) {
	d, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		return 0, err
	}
	sd, ok := d.(protoreflect.ServiceDescriptor)
	if !ok {
		return 0, fmt.Errorf("%s is not a service", service)
	}
	opts, _ := proto.GetExtension(sd.Options(), sbpb.E_Service).(*sbpb.ServiceSessionOptions)
	if opts.GetIdleTimeoutMs() == 0 {
		return 0, fmt.Errorf("%s declares no idle timeout", service)
	}
	return opts.GetIdleTimeoutMs(), nil
}

func sessionKey(service, id string) string { return service + "/" + id }

// isShared: Peek may run beside other Peeks of its session (S6).
func isShared(method string) bool { return method == "Peek" }

// Enqueue takes the call's place in its session's queue now, in arrival order (S6).
// Transports call it (or take the place with takeTurn) as soon as a request arrives, in
// the one goroutine that reads requests in order; Unary and Items wait for the turn and
// give it back. A session with maxTicketsPerSession calls in its queue already refuses
// the call: RESOURCE_EXHAUSTED, reason SESSION_QUEUE_FULL.
func (l *Lab) Enqueue(call *Call) *Fault {
	if call.refused != nil {
		return call.refused
	}
	if call.turn != nil || call.sessionless() || call.SessionID == "" {
		return nil
	}
	tk, f := l.takeTurn(call.Service, call.Method, call.SessionID)
	call.turn = tk
	return f
}

// takeTurn takes a place in the queue of a session of service for an operation of
// method, for a transport that reads the session id before it builds the Call; nil
// without a session (sessionless services, no id). The holder must release it.
func (l *Lab) takeTurn(service, method, sessionID string) (*ticket, *Fault) {
	if service == PingLabService || sessionID == "" {
		return nil, nil
	}
	tk := l.turns.enqueue(sessionKey(service, sessionID), isShared(method))
	if tk == nil {
		return nil, newFault(codes.ResourceExhausted, ReasonQueueFull,
			fmt.Sprintf("session %s has %d calls waiting for their turn already", sessionID, maxTicketsPerSession), nil)
	}
	return tk, nil
}

// Outcome is the answer to one unary call: Reply or Fault, and the headers and
// trailers to send with either.
type Outcome struct {
	Reply    proto.Message
	Fault    *Fault
	Headers  map[string]string
	Trailers map[string]string
}

func faultOutcome(f *Fault) *Outcome { return &Outcome{Fault: f} }

// instructionOf returns the request's instruction (never nil).
func instructionOf(req proto.Message) *pb.Instruction {
	var in *pb.Instruction
	switch r := req.(type) {
	case *pb.OpenRequest:
		in = r.GetInstruction()
	case *pb.ActRequest:
		in = r.GetInstruction()
	}
	if in == nil {
		return &pb.Instruction{}
	}
	return in
}

// Unary answers one unary or one-way call: the lab contract's header, point by point.
func (l *Lab) Unary(ctx context.Context, call *Call, req proto.Message) *Outcome {
	f := l.Enqueue(call)
	if call.turn != nil {
		defer call.turn.release()
	}
	if f != nil {
		return faultOutcome(f)
	}
	if call.invalid != nil {
		return faultOutcome(call.invalid)
	}
	in := instructionOf(req)
	if f := validate(call, in); f != nil {
		return faultOutcome(f)
	}
	count, err := l.countDelivery(call.MessageID)
	if err != nil {
		return faultOutcome(storageFault(err))
	}
	if call.sessionless() {
		return l.ping(ctx, call, in, count)
	}
	if err := call.turn.wait(ctx); err != nil {
		return faultOutcome(contextFault(ctx))
	}
	return l.apply(ctx, call, in, count)
}

func validate(call *Call, in *pb.Instruction) *Fault {
	if !call.sessionless() && call.SessionID == "" {
		return newFault(codes.InvalidArgument, ReasonMissingSessionID, "the call carries no sb-session-id", nil)
	}
	if (call.Method == "Peek" || call.sessionless()) && len(in.GetAppend()) > 0 {
		return newFault(codes.InvalidArgument, ReasonInvalidRequest, call.Method+" may not append to a log", nil)
	}
	if f := in.GetFail(); f != nil && (f.GetCode() < 1 || f.GetCode() > 16) {
		return newFault(codes.InvalidArgument, ReasonInvalidRequest, fmt.Sprintf("fail.code must be 1-16, got %d", f.GetCode()), nil)
	}
	return nil
}

func storageFault(err error) *Fault {
	return newFault(codes.Internal, ReasonStorage, "state not made durable: "+err.Error(), nil)
}

// countDelivery records that a message id reached the service (Observed.delivery_count,
// Instruction.fail_first_deliveries), durably, so retries across a restart count on.
func (l *Lab) countDelivery(messageID string) (uint32, error) {
	if messageID == "" {
		return 0, nil
	}
	if l.journal != nil {
		if err := l.journal.append(entry{Kind: "delivery", MessageID: messageID}); err != nil {
			return 0, err
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.deliveries[messageID]++
	return l.deliveries[messageID], nil
}

// ping runs an instruction of PingLabService against no session: whatever sb-session-id
// arrives is ignored, and nothing is recorded.
func (l *Lab) ping(ctx context.Context, call *Call, in *pb.Instruction, count uint32) *Outcome {
	if n := in.GetFailFirstDeliveries(); n > 0 && count <= n {
		return faultOutcome(firstDeliveriesFault(count, n))
	}
	if f := sleep(ctx, in.GetSleepMs()); f != nil {
		return faultOutcome(f)
	}
	out := &Outcome{Headers: in.GetReplyHeaders(), Trailers: in.GetReplyTrailers()}
	if in.GetFail() != nil {
		out.Fault = instructedFault(in.GetFail(), l.dev)
		return out
	}
	out.Reply = l.reply(call, in, nil, count)
	return out
}

func firstDeliveriesFault(count, n uint32) *Fault {
	return newFault(codes.Unavailable, ReasonFirstDeliveries,
		fmt.Sprintf("delivery %d of the first %d is refused as instructed", count, n), nil)
}

// sleep waits ms, abandoned when the call's deadline passes or it is cancelled (S15).
func sleep(ctx context.Context, ms uint32) *Fault {
	if ms == 0 {
		return nil
	}
	timer := time.NewTimer(time.Duration(ms) * time.Millisecond)
	defer timer.Stop()
	select {
	case <-timer.C:
		return nil
	case <-ctx.Done():
		return contextFault(ctx)
	}
}

// apply runs a session operation while the call holds its session's turn.
func (l *Lab) apply(ctx context.Context, call *Call, in *pb.Instruction, count uint32) *Outcome {
	key := sessionKey(call.Service, call.SessionID)
	now := l.now()

	l.mu.Lock()
	s := l.sessions[key]
	if s == nil && call.Method != "Open" {
		l.mu.Unlock()
		// S4: nothing changes for an id the service never saw.
		return faultOutcome(newFault(codes.NotFound, ReasonCorrelationError, "no session "+call.SessionID, nil))
	}
	if s != nil {
		// Redelivery (S10) and duplicate numbers (S7) answer what was recorded, even once
		// the session has ended: the first delivery was applied while it lived.
		if rec := s.byMessage[call.MessageID]; call.MessageID != "" && rec != nil && l.dev.DedupesMessageIDs() {
			l.mu.Unlock()
			return l.replay(call, in, rec, count)
		}
		if rec := s.bySeq[call.Seq]; call.Seq > 0 && rec != nil && l.dev.ReplaysDuplicateSeq() {
			l.mu.Unlock()
			return l.replay(call, in, rec, count)
		}
	}
	l.mu.Unlock()

	if s != nil {
		if f := l.checkLive(s, now); f != nil {
			return faultOutcome(f)
		}
	}
	var expectedSeq uint64 = 1
	if s != nil {
		l.mu.Lock()
		expectedSeq = s.lastSeq + 1
		l.mu.Unlock()
	}
	if call.Seq > expectedSeq {
		return faultOutcome(newFault(codes.FailedPrecondition, ReasonOutOfSequence,
			fmt.Sprintf("sb-seq %d arrived; the next number is %d", call.Seq, expectedSeq),
			map[string]string{"expected_seq": fmt.Sprint(expectedSeq)}))
	}
	if s == nil {
		var f *Fault
		if s, f = l.start(call, now); f != nil {
			return faultOutcome(f)
		}
	} else if call.Method == "Open" && call.Service == SingleLabService {
		// S3 with REJECT_DUPLICATE: the live session is not joined.
		return faultOutcome(newFault(codes.AlreadyExists, ReasonAlreadyExists, "a session of "+call.Service+" is live", nil))
	}
	if n := in.GetFailFirstDeliveries(); n > 0 && count <= n {
		return faultOutcome(firstDeliveriesFault(count, n))
	}
	if f := sleep(ctx, in.GetSleepMs()); f != nil {
		return faultOutcome(f)
	}

	e := entry{
		Kind: "apply", Service: call.Service, Session: call.SessionID, AtMs: l.now().UnixMilli(),
		Seq: call.Seq, MessageID: call.MessageID,
	}
	out := &Outcome{Headers: in.GetReplyHeaders(), Trailers: in.GetReplyTrailers()}
	rec := &outcome{Headers: out.Headers, Trailers: out.Trailers}
	logKey := l.dev.LogKey(call.Service, call.SessionID)
	if in.GetFail() != nil {
		out.Fault = instructedFault(in.GetFail(), l.dev)
		rec.Fault, _ = proto.Marshal(out.Fault.Status)
	} else {
		e.Append = in.GetAppend()
		if call.Method == "Finish" {
			e.End = "closed"
		}
		l.mu.Lock()
		log := append(append([]string(nil), l.logs[logKey]...), e.Append...)
		l.mu.Unlock()
		out.Reply = l.reply(call, in, log, count)
		rec.Reply, _ = proto.Marshal(out.Reply)
	}
	e.Outcome = rec
	// Durable before the answer (S9, S10): a crash after this line keeps the effect.
	if l.journal != nil {
		if err := l.journal.append(e); err != nil {
			return faultOutcome(storageFault(err))
		}
	}
	l.mu.Lock()
	l.applyEntry(e)
	l.mu.Unlock()
	return out
}

// checkLive answers for a session that has ended, expiring it first when it has been
// idle for its service's timeout × the time scale (S12).
func (l *Lab) checkLive(s *session, now time.Time) *Fault {
	l.mu.Lock()
	state, last := s.state, s.lastActivity
	l.mu.Unlock()
	if state == stateLive && now.Sub(last) >= l.idle[s.service] {
		e := entry{Kind: "end", Service: s.service, Session: s.id, AtMs: now.UnixMilli(), End: "expired"}
		if l.journal != nil {
			if err := l.journal.append(e); err != nil {
				return storageFault(err)
			}
		}
		l.mu.Lock()
		l.applyEntry(e)
		l.mu.Unlock()
		state = stateExpired
	}
	switch state {
	case stateClosed:
		return newFault(codes.NotFound, ReasonSessionClosed, "session "+s.id+" was finished", nil)
	case stateExpired:
		return newFault(codes.NotFound, ReasonSessionExpired, "session "+s.id+" expired", nil)
	}
	return nil
}

// start creates a session for an Open with an id the service has not seen (S2); the
// session exists from here on, whatever the Open's instruction then does.
func (l *Lab) start(call *Call, now time.Time) (*session, *Fault) {
	if call.Service == SingleLabService {
		// At most one live session (S6, SINGLE); an idle one has expired.
		l.mu.Lock()
		var live []*session
		for _, other := range l.sessions {
			if other.service == SingleLabService && other.state == stateLive {
				live = append(live, other)
			}
		}
		l.mu.Unlock()
		for _, other := range live {
			if l.checkLive(other, now) == nil {
				return nil, newFault(codes.AlreadyExists, ReasonAlreadyExists, "a session of "+call.Service+" is live", nil)
			}
		}
	}
	e := entry{Kind: "open", Service: call.Service, Session: call.SessionID, AtMs: now.UnixMilli()}
	if l.journal != nil {
		if err := l.journal.append(e); err != nil {
			return nil, storageFault(err)
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.applyEntry(e)
	return l.sessions[sessionKey(call.Service, call.SessionID)], nil
}

// replay answers a recorded outcome again, applying nothing (S7, S10). The reply says
// so (LabReply.replayed); what the service observed is of this delivery.
func (l *Lab) replay(call *Call, in *pb.Instruction, rec *outcome, count uint32) *Outcome {
	out := &Outcome{Headers: rec.Headers, Trailers: rec.Trailers}
	if rec.Fault != nil {
		st := &spb.Status{}
		if err := proto.Unmarshal(rec.Fault, st); err != nil {
			return faultOutcome(storageFault(err))
		}
		out.Fault = &Fault{Status: st}
		return out
	}
	if call.Method == "Post" {
		out.Reply = &pb.PostAck{}
		return out
	}
	reply := &pb.LabReply{}
	if err := proto.Unmarshal(rec.Reply, reply); err != nil {
		return faultOutcome(storageFault(err))
	}
	reply.Replayed = true
	reply.Observed = nil
	if in.GetObserve() {
		reply.Observed = l.observed(call, count)
	}
	out.Reply = reply
	return out
}

// reply is the answer to a call whose instruction succeeded.
func (l *Lab) reply(call *Call, in *pb.Instruction, log []string, count uint32) proto.Message {
	if call.Method == "Post" {
		return &pb.PostAck{}
	}
	r := &pb.LabReply{Log: log, Payload: in.GetPayload(), Note: in.GetNote()}
	if in.GetObserve() {
		r.Observed = l.observed(call, count)
	}
	return r
}

func (l *Lab) observed(call *Call, count uint32) *pb.Observed {
	return &pb.Observed{
		SessionId:           call.SessionID,
		Seq:                 call.Seq,
		MessageId:           call.MessageID,
		Principal:           call.Principal,
		DeadlineRemainingMs: call.DeadlineRemainingMs,
		Metadata:            call.Metadata,
		Traceparent:         call.Traceparent,
		DeliveryCount:       count,
		Operation:           call.Operation(),
		Transport:           call.Transport,
		Incarnation:         l.incarnation,
	}
}

// applyEntry changes the in-memory state as e says; the same code replays the journal
// at start, so what is served after a restart is what was answered before (S10).
// Called with l.mu held (or before the lab serves).
func (l *Lab) applyEntry(e entry) {
	if e.Kind == "delivery" {
		l.deliveries[e.MessageID]++
		return
	}
	key := sessionKey(e.Service, e.Session)
	at := time.UnixMilli(e.AtMs)
	s := l.sessions[key]
	if e.Kind == "open" {
		if s == nil {
			l.sessions[key] = &session{
				service: e.Service, id: e.Session, lastActivity: at,
				bySeq: map[uint64]*outcome{}, byMessage: map[string]*outcome{},
			}
		}
		return
	}
	if s == nil {
		return
	}
	switch e.End {
	case "closed":
		s.state = stateClosed
	case "expired":
		s.state = stateExpired
	}
	if e.Kind != "apply" {
		return
	}
	s.lastActivity = at
	if len(e.Append) > 0 {
		logKey := l.dev.LogKey(e.Service, e.Session)
		l.logs[logKey] = append(l.logs[logKey], e.Append...)
	}
	if e.Seq == s.lastSeq+1 {
		s.lastSeq = e.Seq
	}
	if e.Outcome != nil {
		if e.Seq > 0 && s.bySeq[e.Seq] == nil {
			s.bySeq[e.Seq] = e.Outcome
		}
		if e.MessageID != "" && s.byMessage[e.MessageID] == nil {
			s.byMessage[e.MessageID] = e.Outcome
		}
	}
}

// replayEntry is the journal's replay callback.
func (l *Lab) replayEntry(e entry) error {
	l.applyEntry(e)
	return nil
}
