package main

import (
	"context"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	pb "sessionbridge.dev/conformance/lab-go/gen/sessionbridge/conformance/v1"
	"sessionbridge.dev/conformance/lab-go/lab"
)

// Each break must change the outcome its rule is about, and the reference must not.

func run(t *testing.T, dev lab.Deviation, method, session, messageID, seq string, req any) *lab.Outcome {
	t.Helper()
	h := map[string][]string{}
	if session != "" {
		h[lab.HeaderSessionID] = []string{session}
	}
	if messageID != "" {
		h[lab.HeaderMessageID] = []string{messageID}
	}
	if seq != "" {
		h[lab.HeaderSeq] = []string{seq}
	}
	service := lab.LabService
	if method == "Ping" {
		service = lab.PingLabService
	}
	c := lab.NewCall(service, method, lab.TransportGRPC, h, true, time.Time{}, time.Now())
	l := labs[dev]
	switch r := req.(type) {
	case *pb.OpenRequest:
		return l.Unary(context.Background(), c, r)
	case *pb.ActRequest:
		return l.Unary(context.Background(), c, r)
	}
	t.Fatal("unknown request")
	return nil
}

var labs = map[lab.Deviation]*lab.Lab{}

func openLabs(t *testing.T, devs ...lab.Deviation) {
	for _, d := range devs {
		l, err := lab.Open(lab.Options{Deviation: d})
		if err != nil {
			t.Fatal(err)
		}
		labs[d] = l
	}
}

func appendReq(entries ...string) *pb.ActRequest {
	return &pb.ActRequest{Instruction: &pb.Instruction{Append: entries}}
}

func logOf(t *testing.T, out *lab.Outcome) []string {
	t.Helper()
	if out.Fault != nil {
		t.Fatalf("fault %v", out.Fault)
	}
	return out.Reply.(*pb.LabReply).GetLog()
}

func TestBreaks(t *testing.T) {
	ref, s1, s7, s10, s14 := lab.Conformant{}, sharedState{}, duplicateSeq{}, ignoreMessageID{}, unknownCodes{}
	openLabs(t, ref, s1, s7, s10, s14)

	// S1: a second session sees the first one's entries.
	for dev, want := range map[lab.Deviation]int{ref: 0, s1: 1} {
		run(t, dev, "Open", "a", "", "", &pb.OpenRequest{Instruction: &pb.Instruction{Append: []string{"a"}}})
		if got := len(logOf(t, run(t, dev, "Open", "b", "", "", &pb.OpenRequest{}))); got != want {
			t.Fatalf("%T: session b sees %d entries, want %d", dev, got, want)
		}
	}
	// S7: a duplicate number is applied again.
	for dev, want := range map[lab.Deviation]int{ref: 1, s7: 2} {
		run(t, dev, "Open", "q", "", "", &pb.OpenRequest{})
		run(t, dev, "Act", "q", "", "1", appendReq("x"))
		if got := len(logOf(t, run(t, dev, "Act", "q", "", "1", appendReq("x")))); got != want {
			t.Fatalf("%T: %d entries after a duplicate number, want %d", dev, got, want)
		}
	}
	// S10: a redelivered message id is applied again.
	for dev, want := range map[lab.Deviation]int{ref: 1, s10: 2} {
		run(t, dev, "Open", "m", "", "", &pb.OpenRequest{})
		run(t, dev, "Act", "m", "id-1", "", appendReq("x"))
		if got := len(logOf(t, run(t, dev, "Act", "m", "id-1", "", appendReq("x")))); got != want {
			t.Fatalf("%T: %d entries after a redelivery, want %d", dev, got, want)
		}
	}
	// S14: an instructed code comes back as UNKNOWN; the lab's own faults keep theirs.
	for dev, want := range map[lab.Deviation]codes.Code{ref: codes.NotFound, s14: codes.Unknown} {
		req := &pb.ActRequest{Instruction: &pb.Instruction{Fail: &pb.Failure{Code: int32(codes.NotFound), Reason: "GONE"}}}
		out := run(t, dev, "Ping", "", "", "", req)
		if out.Fault == nil || out.Fault.Code() != want || out.Fault.Reason() != "GONE" {
			t.Fatalf("%T: fault %v, want %s GONE", dev, out.Fault, want)
		}
		if own := run(t, dev, "Act", "nobody", "", "", appendReq()); own.Fault.Code() != codes.NotFound {
			t.Fatalf("%T: own fault %v", dev, own.Fault)
		}
	}
}
