package lab

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/anypb"

	pb "sessionbridge.dev/conformance/lab-go/gen/sessionbridge/conformance/v1"
)

// Domain of every ErrorInfo this service sends (S14): the lab's reasons are its own,
// apart from the bridge's.
const Domain = "sessionbridge.conformance"

// Reasons the lab answers with on its own (the contract's header names them).
const (
	ReasonCorrelationError = "CORRELATION_ERROR"
	ReasonSessionClosed    = "SESSION_CLOSED"
	ReasonSessionExpired   = "SESSION_EXPIRED"
	ReasonOutOfSequence    = "OUT_OF_SEQUENCE"
	ReasonAlreadyExists    = "SESSION_ALREADY_EXISTS"
	ReasonDeadlineExceeded = "DEADLINE_EXCEEDED"
	ReasonCancelled        = "CANCELLED"
	ReasonInvalidSeq       = "INVALID_SEQ"
	ReasonMissingSessionID = "MISSING_SESSION_ID"
	ReasonInvalidRequest   = "INVALID_INSTRUCTION"
	ReasonFirstDeliveries  = "FAIL_FIRST_DELIVERIES"
	ReasonUnknownOperation = "UNKNOWN_OPERATION"
	ReasonStorage          = "STORAGE_FAILED"
	// ReasonQueueFull: a session already has maxTicketsPerSession calls in its queue.
	ReasonQueueFull = "SESSION_QUEUE_FULL"
)

// Fault is one failed outcome in the fault model of S14: a google.rpc.Status whose
// details start with an ErrorInfo carrying the reason. Every transport sends it in its
// own form (grpc.go, connect.go, nats.go) from this one value.
type Fault struct {
	Status *spb.Status
}

// newFault builds a fault with the lab's own reason and optional ErrorInfo metadata.
func newFault(code codes.Code, reason, message string, metadata map[string]string) *Fault {
	st := &spb.Status{Code: int32(code), Message: message}
	if reason != "" {
		info, err := anypb.New(&errdetails.ErrorInfo{Reason: reason, Domain: Domain, Metadata: metadata})
		if err == nil {
			st.Details = append(st.Details, info)
		}
	}
	return &Fault{Status: st}
}

// instructedFault is Instruction.fail as asked: exactly that code, message, reason
// (ErrorInfo first) and the further details unchanged (S14).
func instructedFault(f *pb.Failure, dev Deviation) *Fault {
	fault := newFault(dev.InstructedCode(codes.Code(f.GetCode())), f.GetReason(), f.GetMessage(), nil)
	fault.Status.Details = append(fault.Status.Details, f.GetDetails()...)
	return fault
}

// Code is the fault's gRPC code.
func (f *Fault) Code() codes.Code { return codes.Code(f.Status.GetCode()) }

// Reason is the reason of the fault's first ErrorInfo, empty without one.
func (f *Fault) Reason() string {
	for _, d := range f.Status.GetDetails() {
		var info errdetails.ErrorInfo
		if d.MessageIs(&info) && d.UnmarshalTo(&info) == nil {
			return info.GetReason()
		}
	}
	return ""
}

func (f *Fault) Error() string {
	return fmt.Sprintf("%s: %s", f.Code(), f.Status.GetMessage())
}

// contextFault is the answer for work abandoned because its call ended (S15): the
// deadline passed, or the caller cancelled.
func contextFault(ctx context.Context) *Fault {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return newFault(codes.DeadlineExceeded, ReasonDeadlineExceeded, "the call's deadline passed; nothing was applied", nil)
	}
	return newFault(codes.Canceled, ReasonCancelled, "the call was cancelled; nothing was applied", nil)
}

// HTTPStatus is the HTTP status of a code: the table of DESIGN §3 (the Connect protocol's).
func HTTPStatus(code codes.Code) int {
	switch code {
	case codes.OK:
		return 200
	case codes.Canceled:
		return 499
	case codes.InvalidArgument, codes.FailedPrecondition, codes.OutOfRange:
		return 400
	case codes.DeadlineExceeded:
		return 504
	case codes.NotFound:
		return 404
	case codes.AlreadyExists, codes.Aborted:
		return 409
	case codes.PermissionDenied:
		return 403
	case codes.ResourceExhausted:
		return 429
	case codes.Unimplemented:
		return 501
	case codes.Unavailable:
		return 503
	case codes.Unauthenticated:
		return 401
	default:
		return 500
	}
}
