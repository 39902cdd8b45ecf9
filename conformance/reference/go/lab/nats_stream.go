package lab

import (
	"context"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "sessionbridge.dev/conformance/lab-go/gen/sessionbridge/conformance/v1"
)

// The framing of server streams over NATS (docs/nats.md "Streaming"): the reply subject
// receives one head, one msg per item and one end; the requester acks and cancels on
// the control subject the head names.
const (
	natsStreamKind    = "sb-stream"
	natsStreamSeq     = "sb-stream-seq"
	natsStreamControl = "sb-stream-control"
	natsStreamWindow  = "sb-stream-window"
	natsStreamAck     = "sb-stream-ack"
	natsStreamCancel  = "sb-stream-cancel"
	// defaultStreamWindow is the window of a request that names none; maxStreamWindow the
	// largest granted (docs/nats.md).
	defaultStreamWindow = 64
	maxStreamWindow     = 1024
)

// defaultStreamAckTimeout is how long a stream waits, its window full, for an ack before
// it gives the requester up (docs/nats.md: NATS never says a reply subject has gone).
const defaultStreamAckTimeout = 30 * time.Second

// streamWindow is the window a request asks for, clamped to maxStreamWindow.
func streamWindow(headers map[string][]string) (uint64, *Fault) {
	text := firstOf(headers, natsStreamWindow)
	if text == "" {
		return defaultStreamWindow, nil
	}
	n, err := strconv.ParseUint(text, 10, 32)
	if err != nil || n < 1 {
		return 0, newFault(codes.InvalidArgument, ReasonInvalidRequest, natsStreamWindow+" must be a positive integer", nil)
	}
	return min(n, maxStreamWindow), nil
}

// natsStream is the serving side of one stream. send blocks while `window` items are
// unacked, so the lab produces no faster than the requester consumes and nothing is
// buffered beyond a window; a requester that stops acking for ackTimeout, or cancels,
// ends the call behind the stream (S6: its turn is given back; S15).
type natsStream struct {
	nc         *nats.Conn
	reply      string
	asJSON     bool
	window     uint64
	ackTimeout time.Duration
	cancel     context.CancelFunc
	control    *nats.Subscription
	controlTo  string

	mu      sync.Mutex
	sent    uint64
	acked   uint64
	failure *Fault
	// progress is signalled (never blocking) when an ack moves forward or the stream fails.
	progress chan struct{}
}

// openNATSStream subscribes the control subject; cancel ends the call's context.
func openNATSStream(nc *nats.Conn, reply string, asJSON bool, window uint64, ackTimeout time.Duration, cancel context.CancelFunc) (*natsStream, error) {
	s := &natsStream{
		nc: nc, reply: reply, asJSON: asJSON, window: window, ackTimeout: ackTimeout, cancel: cancel,
		controlTo: nc.NewInbox(), progress: make(chan struct{}, 1),
	}
	sub, err := nc.Subscribe(s.controlTo, s.onControl)
	if err != nil {
		return nil, err
	}
	s.control = sub
	return s, nil
}

func (s *natsStream) signal() {
	select {
	case s.progress <- struct{}{}:
	default:
	}
}

// onControl reads an ack or a cancel; acks only move forward and never past what was
// sent, so a stray or replayed one is harmless.
func (s *natsStream) onControl(msg *nats.Msg) {
	if msg.Header.Get(natsStreamCancel) != "" {
		s.fail(newFault(codes.Canceled, ReasonCancelled, "the requester cancelled the stream", nil))
		return
	}
	n, err := strconv.ParseUint(msg.Header.Get(natsStreamAck), 10, 64)
	if err != nil {
		return
	}
	s.mu.Lock()
	if n > s.sent {
		n = s.sent
	}
	if n > s.acked {
		s.acked = n
	}
	s.mu.Unlock()
	s.signal()
}

// fail ends the stream with f (the first failure wins) and cancels the call behind it.
func (s *natsStream) fail(f *Fault) {
	s.mu.Lock()
	if s.failure == nil {
		s.failure = f
	}
	s.mu.Unlock()
	s.cancel()
	s.signal()
}

func (s *natsStream) failed() *Fault {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.failure
}

// head tells the requester the call is accepted, where to ack, and the session facts.
func (s *natsStream) head(call *Call) {
	m := nats.NewMsg(s.reply)
	m.Header.Set(natsStreamKind, "head")
	m.Header.Set(natsStreamControl, s.controlTo)
	m.Header.Set(natsContentType, s.contentType())
	if call.SessionID != "" {
		m.Header.Set(HeaderSessionID, call.SessionID)
	}
	if call.MessageID != "" {
		m.Header.Set(HeaderMessageID, call.MessageID)
	}
	_ = s.nc.PublishMsg(m)
}

func (s *natsStream) contentType() string {
	if s.asJSON {
		return natsJSON
	}
	return natsProto
}

// send publishes one item once the window has room: it waits for an ack, the call's
// end, or ackTimeout, whichever comes first.
func (s *natsStream) send(ctx context.Context, item *pb.LabItem) error {
	var data []byte
	var err error
	if s.asJSON {
		data, err = protojson.Marshal(item)
	} else {
		data, err = proto.Marshal(item)
	}
	if err != nil {
		return err
	}
	if limit := s.nc.MaxPayload(); int64(len(data)) > limit {
		s.fail(newFault(codes.ResourceExhausted, ReasonInvalidRequest,
			fmt.Sprintf("an item of %d bytes is over the NATS server's max_payload of %d", len(data), limit), nil))
		return context.Canceled
	}
	for {
		s.mu.Lock()
		room, seq := s.sent-s.acked < s.window, s.sent+1
		if room {
			s.sent = seq
		}
		s.mu.Unlock()
		if f := s.failed(); f != nil {
			return context.Canceled
		}
		if room {
			m := nats.NewMsg(s.reply)
			m.Header.Set(natsStreamKind, "msg")
			m.Header.Set(natsStreamSeq, strconv.FormatUint(seq, 10))
			m.Data = data
			return s.nc.PublishMsg(m)
		}
		timer := time.NewTimer(s.ackTimeout)
		select {
		case <-s.progress:
		case <-ctx.Done():
		case <-timer.C:
			s.fail(newFault(codes.ResourceExhausted, ReasonCancelled,
				fmt.Sprintf("the requester acked nothing for %s with %d items unacked; the stream is given up", s.ackTimeout, s.window),
				map[string]string{"window": strconv.FormatUint(s.window, 10)}))
		}
		timer.Stop()
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// end closes the control subject and sends the end: nothing more on success, the fault
// headers of S14 on failure, and the session facts.
func (s *natsStream) end(call *Call, f *Fault) {
	_ = s.control.Unsubscribe()
	if failure := s.failed(); failure != nil {
		f = failure
	}
	natsEnd(s.nc, s.reply, call, f)
}

// natsEnd sends an end: alone, it answers a stream refused before it was accepted.
func natsEnd(nc *nats.Conn, reply string, call *Call, f *Fault) {
	if reply == "" {
		return
	}
	m := nats.NewMsg(reply)
	if f != nil {
		setFaultHeaders(m, f)
	}
	if call != nil && call.SessionID != "" {
		m.Header.Set(HeaderSessionID, call.SessionID)
	}
	m.Header.Set(natsStreamKind, "end")
	_ = nc.PublishMsg(m)
}

// serveNATSStream answers LabService.Items over NATS once the request has taken its turn
// (call.turn): head, items, end. It runs in a goroutine of its own.
func serveNATSStream(ctx context.Context, cancel context.CancelFunc, nc *nats.Conn, msg *nats.Msg, l *Lab, call *Call, asJSON bool, window uint64, ackTimeout time.Duration) {
	defer cancel()
	release := func() {
		if call.turn != nil {
			call.turn.release()
		}
	}
	req := &pb.ItemsRequest{}
	if err := decode(msg.Data, asJSON, req); err != nil {
		release()
		natsEnd(nc, msg.Reply, call, newFault(codes.InvalidArgument, ReasonInvalidRequest, "malformed request: "+err.Error(), nil))
		return
	}
	if msg.Reply == "" {
		release()
		return
	}
	stream, err := openNATSStream(nc, msg.Reply, asJSON, window, ackTimeout, cancel)
	if err != nil {
		release()
		natsEnd(nc, msg.Reply, call, newFault(codes.Unavailable, "", "no control subject: "+err.Error(), nil))
		return
	}
	stream.head(call)
	f := l.Items(ctx, call, req, func(item *pb.LabItem) error { return stream.send(ctx, item) })
	stream.end(call, f)
}
