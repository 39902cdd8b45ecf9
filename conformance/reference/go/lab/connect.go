package lab

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"connectrpc.com/connect"
	"google.golang.org/protobuf/proto"

	pb "sessionbridge.dev/conformance/lab-go/gen/sessionbridge/conformance/v1"
	"sessionbridge.dev/conformance/lab-go/gen/sessionbridge/conformance/v1/conformancev1connect"
)

// connectLab serves one lab service over HTTP with connect-go: the Connect protocol's
// unary calls (application/proto and application/json), server streaming, the deadline
// from Connect-Timeout-Ms and errors as Connect error JSON with details (S14, S15).
type connectLab struct {
	conformancev1connect.UnimplementedLabServiceHandler
	conformancev1connect.UnimplementedSequentialLabServiceHandler
	conformancev1connect.UnimplementedSingleLabServiceHandler
	conformancev1connect.UnimplementedPingLabServiceHandler
	lab     *Lab
	service string
}

// ConnectHandler serves the four lab services at /<package.Service>/<Method>.
func ConnectHandler(l *Lab) http.Handler {
	mux := http.NewServeMux()
	mux.Handle(conformancev1connect.NewLabServiceHandler(&connectLab{lab: l, service: LabService}))
	mux.Handle(conformancev1connect.NewSequentialLabServiceHandler(&connectLab{lab: l, service: SequentialLabService}))
	mux.Handle(conformancev1connect.NewSingleLabServiceHandler(&connectLab{lab: l, service: SingleLabService}))
	mux.Handle(conformancev1connect.NewPingLabServiceHandler(&connectLab{lab: l, service: PingLabService}))
	return connectTurns(l, mux)
}

// connectArrival is what connectTurns found when a request arrived: its turn, or why
// none could be taken.
type connectArrival struct {
	turn    *ticket
	refused *Fault
}

// connectTurns takes each request's place in its session's queue as soon as net/http
// has read its headers (S6), before connect-go reads and decodes the body: a small
// request that arrives behind a large one of its session must not overtake it while
// the large one is still being read. The turn is given back when the handler returns,
// whatever way it returns.
func connectTurns(l *Lab, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name := strings.TrimPrefix(r.URL.Path, "/")
		slash := strings.LastIndexByte(name, '/')
		if slash < 0 || natsRequest(name[:slash], name[slash+1:]) == nil {
			next.ServeHTTP(w, r)
			return
		}
		tk, f := l.takeTurn(name[:slash], name[slash+1:], r.Header.Get(HeaderSessionID))
		if tk != nil {
			defer tk.release()
		}
		ctx := context.WithValue(r.Context(), turnKey{}, connectArrival{turn: tk, refused: f})
		next.ServeHTTP(w, r.WithContext(ctx))
	})
}

func (c *connectLab) call(ctx context.Context, method string, header http.Header) *Call {
	deadline, _ := ctx.Deadline()
	// Connect sends `-bin` values as base64 text.
	call := NewCall(c.service, method, TransportHTTP, lowerHeaders(header), false, deadline, c.lab.now())
	if arrival, ok := ctx.Value(turnKey{}).(connectArrival); ok {
		call.turn, call.refused = arrival.turn, arrival.refused
	}
	return call
}

func connectUnary[Res any](ctx context.Context, c *connectLab, method string, header http.Header, req proto.Message) (*connect.Response[Res], error) {
	out := c.lab.Unary(ctx, c.call(ctx, method, header), req)
	if out.Fault != nil {
		err := connectError(out.Fault)
		for k, v := range out.Headers {
			err.Meta().Add(k, v)
		}
		return nil, err
	}
	reply, ok := any(out.Reply).(*Res)
	if !ok {
		return nil, connect.NewError(connect.CodeInternal, errors.New("reply of the wrong type"))
	}
	res := connect.NewResponse(reply)
	for k, v := range out.Headers {
		res.Header().Add(k, v)
	}
	// connect-go sends unary trailers as `Trailer-` headers, as the protocol says.
	for k, v := range out.Trailers {
		res.Trailer().Add(k, v)
	}
	return res, nil
}

// connectError is a fault as a Connect error: the same code and message, the ErrorInfo
// and every other detail in order (S14).
func connectError(f *Fault) *connect.Error {
	err := connect.NewError(connect.Code(f.Code()), errors.New(f.Status.GetMessage()))
	for _, d := range f.Status.GetDetails() {
		if detail, e := connect.NewErrorDetail(d); e == nil {
			err.AddDetail(detail)
		}
	}
	return err
}

func (c *connectLab) Open(ctx context.Context, r *connect.Request[pb.OpenRequest]) (*connect.Response[pb.LabReply], error) {
	return connectUnary[pb.LabReply](ctx, c, "Open", r.Header(), r.Msg)
}

func (c *connectLab) Act(ctx context.Context, r *connect.Request[pb.ActRequest]) (*connect.Response[pb.LabReply], error) {
	return connectUnary[pb.LabReply](ctx, c, "Act", r.Header(), r.Msg)
}

func (c *connectLab) Peek(ctx context.Context, r *connect.Request[pb.ActRequest]) (*connect.Response[pb.LabReply], error) {
	return connectUnary[pb.LabReply](ctx, c, "Peek", r.Header(), r.Msg)
}

func (c *connectLab) Finish(ctx context.Context, r *connect.Request[pb.ActRequest]) (*connect.Response[pb.LabReply], error) {
	return connectUnary[pb.LabReply](ctx, c, "Finish", r.Header(), r.Msg)
}

func (c *connectLab) Ping(ctx context.Context, r *connect.Request[pb.ActRequest]) (*connect.Response[pb.LabReply], error) {
	return connectUnary[pb.LabReply](ctx, c, "Ping", r.Header(), r.Msg)
}

func (c *connectLab) Post(ctx context.Context, r *connect.Request[pb.ActRequest]) (*connect.Response[pb.PostAck], error) {
	return connectUnary[pb.PostAck](ctx, c, "Post", r.Header(), r.Msg)
}

func (c *connectLab) Items(ctx context.Context, r *connect.Request[pb.ItemsRequest], stream *connect.ServerStream[pb.LabItem]) error {
	if f := c.lab.Items(ctx, c.call(ctx, "Items", r.Header()), r.Msg, stream.Send); f != nil {
		return connectError(f)
	}
	return nil
}
