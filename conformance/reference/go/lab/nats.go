package lab

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	pb "sessionbridge.dev/conformance/lab-go/gen/sessionbridge/conformance/v1"
)

// NATS headers of docs/nats.md: the deadline, the content type and the fault headers.
const (
	natsContentType      = "Content-Type"
	natsJSON             = "application/json"
	natsProto            = "application/protobuf"
	natsServiceErrorCode = "Nats-Service-Error-Code"
	natsServiceError     = "Nats-Service-Error"
	natsStatus           = "sb-status-bin"
	natsReason           = "sb-reason"
	// maxNATSTimeoutMs mirrors the bridge's bound on sb-timeout-ms: a year.
	maxNATSTimeoutMs = 365 * 24 * 3600 * 1000
)

// ServeNATS answers every lab operation as a request on
// `<prefix>.<package.Service>.<Method>`, and LabService.Items as a stream in the framing
// of docs/nats.md "Streaming". nats.go runs a subscription's callback for one message
// at a time, in the order they arrived: each request takes its session's turn there
// (S6), and then runs in its own goroutine.
func ServeNATS(ctx context.Context, nc *nats.Conn, prefix string, l *Lab) (*nats.Subscription, error) {
	return serveNATS(ctx, nc, prefix, l, defaultStreamAckTimeout)
}

func serveNATS(ctx context.Context, nc *nats.Conn, prefix string, l *Lab, ackTimeout time.Duration) (*nats.Subscription, error) {
	base := prefix + "."
	return nc.Subscribe(base+Package+".>", func(msg *nats.Msg) {
		name := strings.TrimPrefix(msg.Subject, base)
		dot := strings.LastIndexByte(name, '.')
		if dot < 0 {
			natsRespond(msg, nil, faultOutcome(newFault(codes.Unimplemented, ReasonUnknownOperation, "no operation "+name, nil)), false)
			return
		}
		service, method := name[:dot], name[dot+1:]
		req := natsRequest(service, method)
		if req == nil {
			natsRespond(msg, nil, faultOutcome(newFault(codes.Unimplemented, ReasonUnknownOperation, "no operation "+name, nil)), false)
			return
		}
		streaming := method == "Items"
		headers := lowerHeaders(msg.Header)
		asJSON := strings.HasPrefix(strings.ToLower(firstOf(headers, "content-type")), natsJSON)
		// A call refused before it is accepted: a plain answer, or a stream's end alone.
		refuse := func(call *Call, f *Fault) {
			if streaming {
				natsEnd(nc, msg.Reply, call, f)
			} else {
				natsRespond(msg, call, faultOutcome(f), asJSON)
			}
		}
		var window uint64
		if streaming {
			var f *Fault
			if window, f = streamWindow(headers); f != nil {
				refuse(nil, f)
				return
			}
		}
		callCtx, cancel, fault := natsDeadline(ctx, headers)
		if fault != nil {
			refuse(nil, fault)
			return
		}
		deadline, _ := callCtx.Deadline()
		call := NewCall(service, method, TransportNATS, headers, false, deadline, l.now())
		if f := l.Enqueue(call); f != nil {
			cancel()
			refuse(call, f)
			return
		}
		if streaming {
			go serveNATSStream(callCtx, cancel, nc, msg, l, call, asJSON, window, ackTimeout)
			return
		}
		go func() {
			defer cancel()
			if err := decode(msg.Data, asJSON, req); err != nil {
				if call.turn != nil {
					call.turn.release()
				}
				natsRespond(msg, nil, faultOutcome(newFault(codes.InvalidArgument, ReasonInvalidRequest, "malformed request: "+err.Error(), nil)), asJSON)
				return
			}
			natsRespond(msg, call, l.Unary(callCtx, call, req), asJSON)
		}()
	})
}

// natsRequest is an empty request message of the operation, nil for an unknown one.
func natsRequest(service, method string) proto.Message {
	known := map[string][]string{
		LabService:           {"Open", "Act", "Peek", "Post", "Finish", "Items"},
		SequentialLabService: {"Open", "Act", "Finish"},
		SingleLabService:     {"Open", "Act", "Finish"},
		PingLabService:       {"Ping"},
	}
	for _, m := range known[service] {
		if m != method {
			continue
		}
		switch method {
		case "Open":
			return &pb.OpenRequest{}
		case "Items":
			return &pb.ItemsRequest{}
		default:
			return &pb.ActRequest{}
		}
	}
	return nil
}

func firstOf(h map[string][]string, key string) string {
	if v := h[key]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// natsDeadline is the call's context with the deadline of sb-timeout-ms (S15).
func natsDeadline(ctx context.Context, headers map[string][]string) (context.Context, context.CancelFunc, *Fault) {
	text := firstOf(headers, HeaderNATSTimeout)
	if text == "" {
		c, cancel := context.WithCancel(ctx)
		return c, cancel, nil
	}
	ms, err := strconv.ParseInt(text, 10, 64)
	if err != nil || ms <= 0 || ms > maxNATSTimeoutMs {
		return nil, nil, newFault(codes.InvalidArgument, ReasonInvalidRequest, HeaderNATSTimeout+" must be a positive number of milliseconds", nil)
	}
	c, cancel := context.WithTimeout(ctx, time.Duration(ms)*time.Millisecond)
	return c, cancel, nil
}

func decode(data []byte, asJSON bool, into proto.Message) error {
	if asJSON {
		return protojson.UnmarshalOptions{DiscardUnknown: true}.Unmarshal(data, into)
	}
	return proto.Unmarshal(data, into)
}

// natsRespond answers a request, if it has a reply subject: the reply message with the
// reply headers and trailers as headers (NATS has no trailers), or a fault as the
// headers of docs/nats.md (S14).
func natsRespond(msg *nats.Msg, call *Call, out *Outcome, asJSON bool) {
	if msg.Reply == "" {
		return
	}
	reply := nats.NewMsg(msg.Reply)
	for k, v := range out.Headers {
		reply.Header.Add(k, v)
	}
	for k, v := range out.Trailers {
		reply.Header.Add(k, v)
	}
	if out.Fault != nil {
		setFaultHeaders(reply, out.Fault)
		_ = msg.RespondMsg(reply)
		return
	}
	var data []byte
	var err error
	if asJSON {
		data, err = protojson.Marshal(out.Reply)
		reply.Header.Set(natsContentType, natsJSON)
	} else {
		data, err = proto.Marshal(out.Reply)
		reply.Header.Set(natsContentType, natsProto)
	}
	if err != nil {
		natsRespond(msg, call, faultOutcome(newFault(codes.Internal, ReasonStorage, err.Error(), nil)), false)
		return
	}
	reply.Data = data
	_ = msg.RespondMsg(reply)
}

// setFaultHeaders puts a fault in the headers of docs/nats.md (S14): the full status in
// sb-status-bin, the services-API code and message beside it, and the reason.
func setFaultHeaders(m *nats.Msg, f *Fault) {
	if st, err := proto.Marshal(f.Status); err == nil {
		m.Header.Set(natsStatus, base64.StdEncoding.EncodeToString(st))
	}
	m.Header.Set(natsServiceErrorCode, strconv.Itoa(HTTPStatus(f.Code())))
	m.Header.Set(natsServiceError, oneLine(f.Status.GetMessage()))
	if reason := f.Reason(); reason != "" {
		m.Header.Set(natsReason, reason)
	}
}

// oneLine is a header-safe message: NATS headers cannot hold CR or LF.
func oneLine(s string) string {
	return strings.NewReplacer("\r\n", " ", "\r", " ", "\n", " ").Replace(s)
}
