// Command orders-payments is the payments process of the orders example: a plain NATS
// service for examples.payments.v1.Payments, written with nats.go and nothing of
// sessionbridge. The bridge reaches it at nats://<prefix>?codec=json: each call is a
// request on <prefix>.<Method> with a protobuf-JSON body and the session facts as headers
// (sb-session-id, sb-message-id). It keeps one payment per session in an append-only
// ledger file and applies each sb-message-id once, so a redelivered one-way refund
// changes nothing (S10: at-least-once delivery, exactly-once effect).
//
//	orders-payments -nats nats://127.0.0.1:4222 -prefix payments -data .sessionbridge
//
// It prints one JSON line once it is subscribed.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/nats-io/nats.go"
)

func main() {
	url := flag.String("nats", nats.DefaultURL, "NATS server URL")
	prefix := flag.String("prefix", "payments", "subject prefix: requests arrive on <prefix>.<Method>")
	dataDir := flag.String("data", ".sessionbridge", "directory holding the ledger file")
	flag.Parse()

	if err := os.MkdirAll(*dataDir, 0o755); err != nil {
		fail("data directory", err)
	}
	ledgerFile := filepath.Join(*dataDir, "payments.ledger")
	ledger, err := openLedger(ledgerFile)
	if err != nil {
		fail("ledger", err)
	}
	defer ledger.close()

	closed := make(chan struct{})
	nc, err := nats.Connect(*url,
		nats.Name("orders-payments"),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		// Keep trying while the server restarts: the bridge retries one-way deliveries (S11).
		nats.MaxReconnects(-1),
	)
	if err != nil {
		fail("connect", err)
	}
	service := newPaymentsService(ledger)
	// One subscription, one goroutine: calls are applied one at a time, so the ledger
	// needs no lock and its order is the order of application.
	_, err = nc.Subscribe(*prefix+".*", service.handle)
	if err != nil {
		fail("subscribe", err)
	}
	if err := nc.Flush(); err != nil {
		fail("flush", err)
	}
	ready, _ := json.Marshal(map[string]any{
		"msg": "payments process ready", "pid": os.Getpid(), "subject": *prefix + ".*", "ledgerFile": ledgerFile,
	})
	fmt.Println(string(ready))

	signals := make(chan os.Signal, 1)
	signal.Notify(signals, syscall.SIGINT, syscall.SIGTERM)
	<-signals
	// Drain: the calls already received are answered before the connection closes.
	if err := nc.Drain(); err == nil {
		<-closed
	}
}

func fail(what string, err error) {
	fmt.Fprintf(os.Stderr, "orders-payments: %s: %v\n", what, err)
	os.Exit(1)
}
