package lab

import (
	"context"
	"fmt"

	"google.golang.org/grpc/codes"

	pb "sessionbridge.dev/conformance/lab-go/gen/sessionbridge/conformance/v1"
)

// Items serves LabService.Items: `count` items within a live session, each after
// `interval_ms`, then the requested fault or the end of the stream. The stream holds
// its session's turn from start to end (S6); the wait between items is abandoned at
// the deadline or on cancel (S15). send writes one item to the transport.
func (l *Lab) Items(ctx context.Context, call *Call, req *pb.ItemsRequest, send func(*pb.LabItem) error) *Fault {
	f := l.Enqueue(call)
	if call.turn != nil {
		defer call.turn.release()
	}
	if f != nil {
		return f
	}
	if call.invalid != nil {
		return call.invalid
	}
	if call.SessionID == "" {
		return newFault(codes.InvalidArgument, ReasonMissingSessionID, "the call carries no sb-session-id", nil)
	}
	if req.GetItemBytes() > maxItemBytes {
		return newFault(codes.InvalidArgument, ReasonInvalidRequest,
			fmt.Sprintf("item_bytes is at most %d, got %d", maxItemBytes, req.GetItemBytes()), nil)
	}
	if f := req.GetFail(); f != nil && (f.GetCode() < 1 || f.GetCode() > 16) {
		return newFault(codes.InvalidArgument, ReasonInvalidRequest, fmt.Sprintf("fail.code must be 1-16, got %d", f.GetCode()), nil)
	}
	count, err := l.countDelivery(call.MessageID)
	if err != nil {
		return storageFault(err)
	}
	if err := call.turn.wait(ctx); err != nil {
		return contextFault(ctx)
	}
	now := l.now()
	l.mu.Lock()
	s := l.sessions[sessionKey(call.Service, call.SessionID)]
	l.mu.Unlock()
	if s == nil {
		return newFault(codes.NotFound, ReasonCorrelationError, "no session "+call.SessionID, nil)
	}
	if f := l.checkLive(s, now); f != nil {
		return f
	}
	// The stream is a message of the session: it keeps the session from idling out.
	touch := entry{Kind: "apply", Service: call.Service, Session: call.SessionID, AtMs: now.UnixMilli()}
	if l.journal != nil {
		if err := l.journal.append(touch); err != nil {
			return storageFault(err)
		}
	}
	l.mu.Lock()
	l.applyEntry(touch)
	l.mu.Unlock()

	for i := uint32(0); i < req.GetCount(); i++ {
		if i > 0 && req.GetIntervalMs() > 0 {
			if f := sleep(ctx, req.GetIntervalMs()); f != nil {
				return f
			}
		}
		if ctx.Err() != nil {
			return contextFault(ctx)
		}
		item := &pb.LabItem{Index: i, Payload: itemPayload(i, req.GetItemBytes())}
		if req.GetObserve() {
			item.Observed = l.observed(call, count)
		}
		if err := send(item); err != nil {
			return contextFault(ctx)
		}
	}
	if req.GetFail() != nil {
		return instructedFault(req.GetFail(), l.dev)
	}
	return nil
}

// itemPayload is n bytes, each the item's index modulo 256, so a case can tell items
// apart and check their size.
func itemPayload(index, n uint32) []byte {
	if n == 0 {
		return nil
	}
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(index)
	}
	return b
}
