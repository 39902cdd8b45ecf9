package lab

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	pb "sessionbridge.dev/conformance/lab-go/gen/sessionbridge/conformance/v1"
)

// startNATS runs the nats-server that scripts/install-tools.sh installs into .tools/bin
// on a port it picks itself, and connects to it.
func startNATS(t *testing.T) *nats.Conn {
	t.Helper()
	bin, err := filepath.Abs("../../../../.tools/bin/nats-server")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("no nats-server at %s (scripts/install-tools.sh installs it): %v", bin, err)
	}
	dir := t.TempDir()
	config := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(config, []byte("listen: 127.0.0.1:-1\nports_file_dir: \""+dir+"\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-c", config)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	deadline := time.Now().Add(30 * time.Second)
	for {
		matches, _ := filepath.Glob(filepath.Join(dir, "*.ports"))
		if len(matches) > 0 {
			var ports struct {
				Nats []string `json:"nats"`
			}
			if b, err := os.ReadFile(matches[0]); err == nil && json.Unmarshal(b, &ports) == nil && len(ports.Nats) > 0 {
				nc, err := nats.Connect(ports.Nats[0])
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(nc.Close)
				return nc
			}
		}
		if time.Now().After(deadline) {
			t.Fatal("nats-server wrote no ports file")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// natsLab serves a fresh lab on nc under prefix "lab" with the given ack timeout, and
// opens one session.
func natsLab(t *testing.T, nc *nats.Conn, ackTimeout time.Duration, session string) *Lab {
	t.Helper()
	l := openLab(t, "", 1, nil)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	sub, err := serveNATS(ctx, nc, "lab", l, ackTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	if out := l.Unary(ctx, call("Open", facts{session: session}), open()); out.Fault != nil {
		t.Fatal(out.Fault)
	}
	return l
}

// requestItems sends an Items request with a reply subject of the test's own and
// returns that subscription, read synchronously.
func requestItems(t *testing.T, nc *nats.Conn, session string, req *pb.ItemsRequest, window int) *nats.Subscription {
	t.Helper()
	inbox := nc.NewInbox()
	replies, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = replies.Unsubscribe() })
	m := nats.NewMsg("lab." + LabService + ".Items")
	m.Reply = inbox
	m.Header.Set(HeaderSessionID, session)
	if window > 0 {
		m.Header.Set(natsStreamWindow, strconv.Itoa(window))
	}
	m.Data = marshal(t, req)
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	return replies
}

func next(t *testing.T, replies *nats.Subscription) *nats.Msg {
	t.Helper()
	m, err := replies.NextMsg(30 * time.Second)
	if err != nil {
		t.Fatalf("no next stream message: %v", err)
	}
	return m
}

func statusOf(t *testing.T, m *nats.Msg) *spb.Status {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(m.Header.Get(natsStatus))
	if err != nil {
		t.Fatal(err)
	}
	st := &spb.Status{}
	if err := proto.Unmarshal(raw, st); err != nil {
		t.Fatal(err)
	}
	return st
}

// A requester that never acks gets one window of items and no more; once the window has
// been full for the ack timeout the stream ends RESOURCE_EXHAUSTED and the session's
// turn is given back (docs/nats.md "Streaming", S6).
func TestANATSStreamSendsNoMoreThanItsWindowAheadOfTheAcks(t *testing.T) {
	nc := startNATS(t)
	l := natsLab(t, nc, 200*time.Millisecond, "window")
	replies := requestItems(t, nc, "window", &pb.ItemsRequest{Count: 10}, 3)
	if kind := next(t, replies).Header.Get(natsStreamKind); kind != "head" {
		t.Fatalf("first %q, want head", kind)
	}
	var seqs []string
	var end *nats.Msg
	for end == nil {
		m := next(t, replies)
		switch m.Header.Get(natsStreamKind) {
		case "msg":
			seqs = append(seqs, m.Header.Get(natsStreamSeq))
		case "end":
			end = m
		default:
			t.Fatalf("unexpected %v", m.Header)
		}
	}
	if len(seqs) != 3 || seqs[0] != "1" || seqs[2] != "3" {
		t.Fatalf("items %v before the end, want the window of 3", seqs)
	}
	if st := statusOf(t, end); codes.Code(st.GetCode()) != codes.ResourceExhausted {
		t.Fatalf("end %v, want RESOURCE_EXHAUSTED", st)
	}
	out := l.Unary(context.Background(), call("Act", facts{session: "window"}), act("after"))
	equalLog(t, mustReply(t, out).GetLog(), "after")
}

// Acks open the window again: a requester that acks what it has read gets every item.
func TestANATSStreamGoesOnAsTheRequesterAcks(t *testing.T) {
	nc := startNATS(t)
	natsLab(t, nc, 30*time.Second, "acks")
	replies := requestItems(t, nc, "acks", &pb.ItemsRequest{Count: 7, ItemBytes: 3}, 2)
	head := next(t, replies)
	control := head.Header.Get(natsStreamControl)
	if head.Header.Get(natsStreamKind) != "head" || control == "" || head.Header.Get(HeaderSessionID) != "acks" {
		t.Fatalf("head %v", head.Header)
	}
	read := 0
	for {
		m := next(t, replies)
		if m.Header.Get(natsStreamKind) == "end" {
			if m.Header.Get(natsStatus) != "" {
				t.Fatalf("end with a fault: %v", statusOf(t, m))
			}
			break
		}
		item := &pb.LabItem{}
		if err := proto.Unmarshal(m.Data, item); err != nil {
			t.Fatal(err)
		}
		if int(item.GetIndex()) != read || m.Header.Get(natsStreamSeq) != strconv.Itoa(read+1) {
			t.Fatalf("item %d (seq %s), want %d", item.GetIndex(), m.Header.Get(natsStreamSeq), read)
		}
		read++
		ack := nats.NewMsg(control)
		ack.Header.Set(natsStreamAck, strconv.Itoa(read))
		if err := nc.PublishMsg(ack); err != nil {
			t.Fatal(err)
		}
	}
	if read != 7 {
		t.Fatalf("read %d items, want 7", read)
	}
}

// A request refused before it is accepted answers an end alone, without a head.
func TestARefusedNATSStreamAnswersAnEndAlone(t *testing.T) {
	nc := startNATS(t)
	natsLab(t, nc, 30*time.Second, "refused")
	inbox := nc.NewInbox()
	refused, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	m := nats.NewMsg("lab." + LabService + ".Items")
	m.Reply = inbox
	m.Header.Set(HeaderSessionID, "refused")
	m.Header.Set(natsStreamWindow, "0")
	m.Data = marshal(t, &pb.ItemsRequest{Count: 1})
	if err := nc.PublishMsg(m); err != nil {
		t.Fatal(err)
	}
	end := next(t, refused)
	if end.Header.Get(natsStreamKind) != "end" || codes.Code(statusOf(t, end).GetCode()) != codes.InvalidArgument {
		t.Fatalf("answer %v, want an end with INVALID_ARGUMENT", end.Header)
	}
}
