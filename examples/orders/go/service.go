package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go"
)

// gRPC codes (google.rpc.Code numbering) and their HTTP numbers (DESIGN §3) used here.
const (
	codeInvalidArgument    = 3
	codeNotFound           = 5
	codeFailedPrecondition = 9
	codeUnimplemented      = 12
	codeInternal           = 13
)

var httpOf = map[int]int{
	codeInvalidArgument: 400, codeNotFound: 404, codeFailedPrecondition: 400, codeUnimplemented: 501, codeInternal: 500,
}

// Largest request body taken: a payments message is a few dozen bytes.
const maxRequestBytes = 64 * 1024

type fault struct {
	code    int
	reason  string
	message string
}

func (f *fault) Error() string { return f.message }

// paymentMessage is examples.payments.v1.Payment in the proto3 JSON mapping (zero values
// left out, as protobuf JSON printers do).
type paymentMessage struct {
	OrderID       string `json:"orderId,omitempty"`
	ChargedCents  uint32 `json:"chargedCents,omitempty"`
	RefundedCents uint32 `json:"refundedCents,omitempty"`
	Captured      bool   `json:"captured,omitempty"`
}

// request covers every request message of the contract: order_id and amount_cents. The
// proto3 JSON mapping allows both the JSON and the original field names.
type request struct {
	OrderID         string `json:"orderId"`
	OrderIDOrig     string `json:"order_id"`
	AmountCents     uint32 `json:"amountCents"`
	AmountCentsOrig uint32 `json:"amount_cents"`
}

type paymentsService struct {
	ledger *ledger
}

func newPaymentsService(l *ledger) *paymentsService { return &paymentsService{ledger: l} }

func (s *paymentsService) handle(msg *nats.Msg) {
	reply, err := s.serve(msg)
	out := nats.NewMsg(msg.Reply)
	if err != nil {
		f, ok := err.(*fault)
		if !ok {
			f = &fault{code: codeInternal, reason: "LEDGER_FAILURE", message: err.Error()}
		}
		// S14: the services API's headers for any NATS client, and sb-status-bin with the
		// exact code and an ErrorInfo for the bridge.
		out.Header.Set("Nats-Service-Error-Code", fmt.Sprint(httpOf[f.code]))
		out.Header.Set("Nats-Service-Error", f.message)
		out.Header.Set("sb-status-bin", base64.StdEncoding.EncodeToString(encodeStatus(f.code, f.message, f.reason)))
	} else {
		out.Header.Set("Content-Type", "application/json")
		out.Data = reply
	}
	if msg.Reply != "" {
		_ = msg.RespondMsg(out)
	}
}

func (s *paymentsService) serve(msg *nats.Msg) ([]byte, error) {
	method := msg.Subject[strings.LastIndexByte(msg.Subject, '.')+1:]
	if len(msg.Data) > maxRequestBytes {
		return nil, &fault{codeInvalidArgument, "REQUEST_TOO_LARGE", "request too large"}
	}
	if ct := header(msg, "Content-Type"); !strings.HasPrefix(ct, "application/json") {
		return nil, &fault{codeInvalidArgument, "UNSUPPORTED_CODEC", "send protobuf JSON: nats://<prefix>?codec=json"}
	}
	var req request
	if err := json.Unmarshal(msg.Data, &req); err != nil {
		return nil, &fault{codeInvalidArgument, "MALFORMED_REQUEST", "malformed request: " + err.Error()}
	}
	if req.OrderID == "" {
		req.OrderID = req.OrderIDOrig
	}
	if req.AmountCents == 0 {
		req.AmountCents = req.AmountCentsOrig
	}
	sessionID := header(msg, "sb-session-id")
	messageID := header(msg, "sb-message-id")

	// S10: a message id already applied gets the answer it got, and changes nothing.
	if messageID != "" {
		if reply, seen := s.ledger.replies[messageID]; seen {
			return reply, nil
		}
	}
	p := s.ledger.payments[sessionID]
	if p != nil && p.OrderID != req.OrderID {
		return nil, &fault{codeNotFound, "NO_PAYMENT", fmt.Sprintf("no payment for order %s in this session", req.OrderID)}
	}
	e := entry{MessageID: messageID, SessionID: sessionID, Operation: method, OrderID: req.OrderID}
	switch method {
	case "Charge":
		if req.AmountCents == 0 {
			return nil, &fault{codeInvalidArgument, "AMOUNT_REQUIRED", "amount_cents must be at least 1"}
		}
		if p != nil && p.Captured {
			return nil, &fault{codeFailedPrecondition, "ALREADY_CAPTURED", "the payment is captured"}
		}
		e.Charged = req.AmountCents
	case "Refund":
		if p == nil {
			return nil, &fault{codeNotFound, "NO_PAYMENT", fmt.Sprintf("nothing was charged for order %s", req.OrderID)}
		}
		if req.AmountCents > p.Charged-p.Refunded {
			return nil, &fault{codeFailedPrecondition, "REFUND_EXCEEDS_CHARGE",
				fmt.Sprintf("refund of %d cents exceeds the %d cents left", req.AmountCents, p.Charged-p.Refunded)}
		}
		e.Refunded = req.AmountCents
	case "Get":
		if p == nil {
			return nil, &fault{codeNotFound, "NO_PAYMENT", fmt.Sprintf("nothing was charged for order %s", req.OrderID)}
		}
		return json.Marshal(view(req.OrderID, p, 0, 0, false))
	case "Capture":
		if p == nil {
			return nil, &fault{codeNotFound, "NO_PAYMENT", fmt.Sprintf("nothing was charged for order %s", req.OrderID)}
		}
		e.Captured = true
	default:
		return nil, &fault{codeUnimplemented, "UNKNOWN_METHOD", "no method " + method}
	}
	var reply []byte
	var err error
	if method == "Refund" {
		reply = []byte("{}") // google.protobuf.Empty
	} else {
		reply, err = json.Marshal(view(req.OrderID, p, e.Charged, e.Refunded, e.Captured))
		if err != nil {
			return nil, err
		}
	}
	e.Reply = reply
	if err := s.ledger.append(e); err != nil {
		return nil, err
	}
	return reply, nil
}

// view is the payment as it is after adding the deltas.
func view(orderID string, p *payment, charged, refunded uint32, captured bool) paymentMessage {
	if p == nil {
		p = &payment{}
	}
	return paymentMessage{
		OrderID:       orderID,
		ChargedCents:  p.Charged + charged,
		RefundedCents: p.Refunded + refunded,
		Captured:      p.Captured || captured,
	}
}

// header reads a header whatever its case: NATS headers keep the case they were sent in
// (the bridge sends lower-case keys), and nats.go's Header.Get is case-sensitive.
func header(msg *nats.Msg, key string) string {
	for k, values := range msg.Header {
		if strings.EqualFold(k, key) && len(values) > 0 {
			return values[0]
		}
	}
	return ""
}
