package lab

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	pb "sessionbridge.dev/conformance/lab-go/gen/sessionbridge/conformance/v1"
)

// maxSettingsBytes bounds the settings message read from stdin before allocating it.
const maxSettingsBytes = 1 << 20

// shutdownGrace is how long calls in flight may finish once the runner says stop.
const shutdownGrace = 2 * time.Second

// Main runs the harness protocol (harness.proto): one size-delimited ServiceSettings on
// stdin, one size-delimited ServiceAddresses on stdout, then serve until stdin closes
// or SIGTERM. Logs go to stderr. It returns the process's exit code.
func Main(dev Deviation) int {
	logger := log.New(os.Stderr, "sb-lab-go: ", log.LstdFlags|log.Lmicroseconds)
	settings, err := readSettings(os.Stdin)
	if err != nil {
		logger.Printf("reading settings: %v", err)
		return 2
	}
	stop := make(chan struct{}, 2)
	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT)
	go func() {
		<-signals
		stop <- struct{}{}
	}()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop <- struct{}{}
	}()

	server, addresses, err := Serve(settings, dev, logger)
	if err != nil {
		logger.Printf("starting: %v", err)
		return 1
	}
	if err := writeDelimited(os.Stdout, addresses); err != nil {
		logger.Printf("writing addresses: %v", err)
		server.Stop()
		return 1
	}
	<-stop
	server.Stop()
	return 0
}

// Server is a running lab on its transports.
type Server struct {
	lab    *Lab
	grpc   *grpc.Server
	http   *http.Server
	nats   *nats.Conn
	cancel context.CancelFunc
}

// Serve starts the lab on the transports the settings ask for, each on 127.0.0.1 port 0.
func Serve(settings *pb.ServiceSettings, dev Deviation, logger *log.Logger) (*Server, *pb.ServiceAddresses, error) {
	l, err := Open(Options{StateDir: settings.GetStateDir(), TimeScale: settings.GetTimeScale(), Deviation: dev})
	if err != nil {
		return nil, nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{lab: l, cancel: cancel}
	addresses := &pb.ServiceAddresses{}
	want := map[string]bool{}
	for _, t := range settings.GetTransports() {
		want[t] = true
	}
	serves := func(t string) bool { return len(want) == 0 || want[t] }

	if serves(TransportGRPC) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.Stop()
			return nil, nil, err
		}
		s.grpc = grpc.NewServer(GRPCServerOptions(l)...)
		RegisterGRPC(s.grpc, l)
		go func() { _ = s.grpc.Serve(lis) }()
		addresses.Grpc = lis.Addr().String()
	}
	if serves(TransportHTTP) {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			s.Stop()
			return nil, nil, err
		}
		s.http = &http.Server{Handler: ConnectHandler(l), ReadHeaderTimeout: 10 * time.Second}
		go func() { _ = s.http.Serve(lis) }()
		addresses.Http = "http://" + lis.Addr().String()
	}
	// NATS needs a server: served when asked for, or by default when a URL is given.
	if want[TransportNATS] || (len(want) == 0 && settings.GetNatsUrl() != "") {
		if settings.GetNatsUrl() == "" {
			s.Stop()
			return nil, nil, errors.New("nats is asked for but nats_url is empty")
		}
		prefix := settings.GetNatsSubjectPrefix()
		if prefix == "" {
			prefix = "lab"
		}
		nc, err := nats.Connect(settings.GetNatsUrl(), nats.Name("sb-lab-go"), nats.MaxReconnects(-1))
		if err != nil {
			s.Stop()
			return nil, nil, fmt.Errorf("nats: %w", err)
		}
		s.nats = nc
		if _, err := ServeNATS(ctx, nc, prefix, l); err != nil {
			s.Stop()
			return nil, nil, fmt.Errorf("nats: %w", err)
		}
		// The subscription is registered with the server before the runner hears of it.
		if err := nc.Flush(); err != nil {
			s.Stop()
			return nil, nil, fmt.Errorf("nats: %w", err)
		}
		addresses.Nats = prefix
	}
	logger.Printf("serving grpc=%q http=%q nats=%q incarnation=%d", addresses.GetGrpc(), addresses.GetHttp(), addresses.GetNats(), l.Incarnation())
	return s, addresses, nil
}

// Stop lets calls in flight finish for a moment, then closes everything.
func (s *Server) Stop() {
	done := make(chan struct{})
	go func() {
		if s.http != nil {
			ctx, cancel := context.WithTimeout(context.Background(), shutdownGrace)
			_ = s.http.Shutdown(ctx)
			cancel()
		}
		if s.nats != nil {
			_ = s.nats.Drain()
		}
		if s.grpc != nil {
			s.grpc.GracefulStop()
		}
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(shutdownGrace):
		if s.grpc != nil {
			s.grpc.Stop()
		}
		if s.http != nil {
			_ = s.http.Close()
		}
		if s.nats != nil {
			s.nats.Close()
		}
	}
	s.cancel()
	_ = s.lab.Close()
}

func readSettings(r io.Reader) (*pb.ServiceSettings, error) {
	var size [4]byte
	if _, err := io.ReadFull(r, size[:]); err != nil {
		return nil, err
	}
	n := binary.BigEndian.Uint32(size[:])
	if n > maxSettingsBytes {
		return nil, fmt.Errorf("settings of %d bytes, more than %d", n, maxSettingsBytes)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return nil, err
	}
	settings := &pb.ServiceSettings{}
	if err := proto.Unmarshal(body, settings); err != nil {
		return nil, err
	}
	return settings, nil
}

func writeDelimited(w io.Writer, m proto.Message) error {
	body, err := proto.Marshal(m)
	if err != nil {
		return err
	}
	frame := make([]byte, 4+len(body))
	binary.BigEndian.PutUint32(frame, uint32(len(body)))
	copy(frame[4:], body)
	_, err = w.Write(frame)
	return err
}
