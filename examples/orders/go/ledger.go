package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
)

// entry is one applied message: the change it made and the answer it got. A line of the
// ledger file holds one entry; the change and the record of its message id are one write,
// so after a crash either both are there or neither (S10).
type entry struct {
	MessageID string          `json:"messageId"`
	SessionID string          `json:"sessionId"`
	Operation string          `json:"operation"`
	OrderID   string          `json:"orderId"`
	Charged   uint32          `json:"chargedCents,omitempty"`
	Refunded  uint32          `json:"refundedCents,omitempty"`
	Captured  bool            `json:"captured,omitempty"`
	Reply     json.RawMessage `json:"reply"`
}

// payment is the state of one session's payment, rebuilt from the ledger at start.
type payment struct {
	OrderID  string
	Charged  uint32
	Refunded uint32
	Captured bool
}

// ledger is the durable record: an append-only file of entries, fsynced before a call is
// answered, replayed into memory at start.
type ledger struct {
	file     *os.File
	payments map[string]*payment        // by session id
	replies  map[string]json.RawMessage // by message id: what was answered
}

func openLedger(path string) (*ledger, error) {
	file, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	l := &ledger{file: file, payments: map[string]*payment{}, replies: map[string]json.RawMessage{}}
	good, err := l.replay()
	if err != nil {
		file.Close()
		return nil, err
	}
	// A line cut short by a crash was never answered: drop it, and append after the last
	// whole one.
	if err := file.Truncate(good); err != nil {
		file.Close()
		return nil, err
	}
	if _, err := file.Seek(good, io.SeekStart); err != nil {
		file.Close()
		return nil, err
	}
	return l, nil
}

// replay applies every whole line and returns the length of the file up to the last one.
func (l *ledger) replay() (int64, error) {
	reader := bufio.NewReader(l.file)
	var good int64
	for {
		line, err := reader.ReadBytes('\n')
		if errors.Is(err, io.EOF) {
			return good, nil // an unterminated tail is a torn write
		}
		if err != nil {
			return 0, err
		}
		var e entry
		if jsonErr := json.Unmarshal(bytes.TrimSpace(line), &e); jsonErr != nil {
			return 0, fmt.Errorf("ledger line at byte %d: %w", good, jsonErr)
		}
		l.apply(e)
		good += int64(len(line))
	}
}

func (l *ledger) apply(e entry) {
	p := l.payments[e.SessionID]
	if p == nil {
		p = &payment{OrderID: e.OrderID}
		l.payments[e.SessionID] = p
	}
	p.Charged += e.Charged
	p.Refunded += e.Refunded
	p.Captured = p.Captured || e.Captured
	if e.MessageID != "" {
		l.replies[e.MessageID] = e.Reply
	}
}

// append makes the entry durable, then applies it.
func (l *ledger) append(e entry) error {
	line, err := json.Marshal(e)
	if err != nil {
		return err
	}
	if _, err := l.file.Write(append(line, '\n')); err != nil {
		return err
	}
	if err := l.file.Sync(); err != nil {
		return err
	}
	l.apply(e)
	return nil
}

func (l *ledger) close() error { return l.file.Close() }
