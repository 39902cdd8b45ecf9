package lab

import (
	"context"
	"encoding/base64"
	"strings"

	"google.golang.org/grpc"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
	"google.golang.org/protobuf/proto"

	pb "sessionbridge.dev/conformance/lab-go/gen/sessionbridge/conformance/v1"
)

// grpcLab serves one lab service over grpc-go; one value per service, registered under
// that service's descriptor. It implements every method of the four services, of
// which each registration uses its own.
type grpcLab struct {
	pb.UnimplementedLabServiceServer
	pb.UnimplementedSequentialLabServiceServer
	pb.UnimplementedSingleLabServiceServer
	pb.UnimplementedPingLabServiceServer
	lab     *Lab
	service string
}

// turnKey is the context key of the turn grpcTap took for a call.
type turnKey struct{}

// GRPCServerOptions are the options a grpc.Server serving l needs: the tap that takes
// each call's turn in arrival order.
func GRPCServerOptions(l *Lab) []grpc.ServerOption {
	return []grpc.ServerOption{grpc.InTapHandle(grpcTap(l))}
}

// grpcTap takes each call's place in its session's queue when its headers arrive (S6).
// grpc-go runs every handler in a goroutine of its own, and goroutines started in one
// order may run in another: two calls pipelined on one connection would take their
// turns in whichever order the scheduler picked. The tap instead runs on the
// connection's reader goroutine, once per stream, in the order the streams arrive,
// before the handler's goroutine exists. The handler waits for the turn and gives it
// back; when no handler runs (a deadline already past, a request grpc-go cannot read,
// the connection gone), the end of the stream's context gives it back.
func grpcTap(l *Lab) tap.ServerInHandle {
	return func(ctx context.Context, info *tap.Info) (context.Context, error) {
		name := strings.TrimPrefix(info.FullMethodName, "/")
		slash := strings.LastIndexByte(name, '/')
		if slash < 0 || natsRequest(name[:slash], name[slash+1:]) == nil {
			return ctx, nil
		}
		var sessionID string
		if v := info.Header.Get(HeaderSessionID); len(v) > 0 {
			sessionID = v[0]
		}
		tk, f := l.takeTurn(name[:slash], name[slash+1:], sessionID)
		if f != nil {
			return ctx, status.ErrorProto(f.Status)
		}
		if tk == nil {
			return ctx, nil
		}
		context.AfterFunc(ctx, tk.release)
		return context.WithValue(ctx, turnKey{}, tk), nil
	}
}

// RegisterGRPC registers the four lab services on s.
func RegisterGRPC(s *grpc.Server, l *Lab) {
	pb.RegisterLabServiceServer(s, &grpcLab{lab: l, service: LabService})
	pb.RegisterSequentialLabServiceServer(s, &grpcLab{lab: l, service: SequentialLabService})
	pb.RegisterSingleLabServiceServer(s, &grpcLab{lab: l, service: SingleLabService})
	pb.RegisterPingLabServiceServer(s, &grpcLab{lab: l, service: PingLabService})
}

func (g *grpcLab) call(ctx context.Context, method string) *Call {
	md, _ := metadata.FromIncomingContext(ctx)
	deadline, _ := ctx.Deadline()
	// grpc-go hands `-bin` values over decoded, as raw bytes.
	c := NewCall(g.service, method, TransportGRPC, md, true, deadline, g.lab.now())
	if tk, ok := ctx.Value(turnKey{}).(*ticket); ok {
		c.turn = tk
	}
	return c
}

func (g *grpcLab) unary(ctx context.Context, method string, req proto.Message) (proto.Message, error) {
	out := g.lab.Unary(ctx, g.call(ctx, method), req)
	// Reply headers and trailers go out with answers and faults alike (S15).
	_ = grpc.SetHeader(ctx, grpcMetadata(out.Headers))
	_ = grpc.SetTrailer(ctx, grpcMetadata(out.Trailers))
	if out.Fault != nil {
		return nil, status.ErrorProto(out.Fault.Status)
	}
	return out.Reply, nil
}

// grpcMetadata is reply metadata for grpc-go; `-bin` values are given as base64 and
// sent as the bytes they encode (grpc-go encodes them on the wire).
func grpcMetadata(m map[string]string) metadata.MD {
	md := metadata.MD{}
	for k, v := range m {
		key := strings.ToLower(k)
		if strings.HasSuffix(key, "-bin") {
			if b, err := base64.StdEncoding.DecodeString(v); err == nil {
				v = string(b)
			} else if b, err := base64.RawStdEncoding.DecodeString(v); err == nil {
				v = string(b)
			}
		}
		md.Append(key, v)
	}
	return md
}

func labReply(m proto.Message, err error) (*pb.LabReply, error) {
	if err != nil {
		return nil, err
	}
	return m.(*pb.LabReply), nil
}

func (g *grpcLab) Open(ctx context.Context, r *pb.OpenRequest) (*pb.LabReply, error) {
	return labReply(g.unary(ctx, "Open", r))
}

func (g *grpcLab) Act(ctx context.Context, r *pb.ActRequest) (*pb.LabReply, error) {
	return labReply(g.unary(ctx, "Act", r))
}

func (g *grpcLab) Peek(ctx context.Context, r *pb.ActRequest) (*pb.LabReply, error) {
	return labReply(g.unary(ctx, "Peek", r))
}

func (g *grpcLab) Finish(ctx context.Context, r *pb.ActRequest) (*pb.LabReply, error) {
	return labReply(g.unary(ctx, "Finish", r))
}

func (g *grpcLab) Ping(ctx context.Context, r *pb.ActRequest) (*pb.LabReply, error) {
	return labReply(g.unary(ctx, "Ping", r))
}

func (g *grpcLab) Post(ctx context.Context, r *pb.ActRequest) (*pb.PostAck, error) {
	m, err := g.unary(ctx, "Post", r)
	if err != nil {
		return nil, err
	}
	return m.(*pb.PostAck), nil
}

func (g *grpcLab) Items(r *pb.ItemsRequest, stream grpc.ServerStreamingServer[pb.LabItem]) error {
	ctx := stream.Context()
	if f := g.lab.Items(ctx, g.call(ctx, "Items"), r, stream.Send); f != nil {
		return status.ErrorProto(f.Status)
	}
	return nil
}
