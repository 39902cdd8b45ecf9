package lab

import (
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
)

// Session facts as headers, the same names on every transport (docs/sessions.md).
const (
	HeaderSessionID   = "sb-session-id"
	HeaderSeq         = "sb-seq"
	HeaderMessageID   = "sb-message-id"
	HeaderPrincipal   = "sb-principal"
	HeaderTraceparent = "traceparent"
	// HeaderNATSTimeout carries the remaining deadline on NATS (docs/nats.md).
	HeaderNATSTimeout = "sb-timeout-ms"
)

// Transports, as Observed.transport names them.
const (
	TransportGRPC = "grpc"
	TransportHTTP = "http"
	TransportNATS = "nats"
)

// Call is one request as the lab sees it, whatever transport brought it.
type Call struct {
	// Service is the full service name, for example sessionbridge.conformance.v1.LabService.
	Service   string
	Method    string
	Transport string

	SessionID   string
	MessageID   string
	Principal   string
	Traceparent string
	// Seq is sb-seq, 0 when absent (S7).
	Seq uint64
	// Metadata is every custom request header (Observed.metadata).
	Metadata map[string]string
	// DeadlineRemainingMs is the time left when the call arrived, -1 without a deadline.
	DeadlineRemainingMs int64

	// invalid is set when the session facts themselves are malformed.
	invalid *Fault
	// turn is the call's place in its session's queue, taken when it arrived (S6).
	turn *ticket
	// refused is why the transport could not take a turn when the call arrived.
	refused *Fault
}

// sessionless: PingLabService's calls reach no session; the instruction runs against no
// log (lab.proto).
func (c *Call) sessionless() bool { return c.Service == PingLabService }

// Operation is the full method name, as Observed.operation reports it.
func (c *Call) Operation() string { return c.Service + "/" + c.Method }

// NewCall reads the session facts and custom metadata from request headers. Keys must
// be lower-case; values of `-bin` keys are the raw bytes (rawBinary) or base64 text.
func NewCall(service, method, transport string, headers map[string][]string, rawBinary bool, deadline time.Time, now time.Time) *Call {
	c := &Call{
		Service:             service,
		Method:              method,
		Transport:           transport,
		Metadata:            map[string]string{},
		DeadlineRemainingMs: -1,
	}
	if !deadline.IsZero() {
		c.DeadlineRemainingMs = max(0, deadline.Sub(now).Milliseconds())
	}
	first := func(key string) string {
		if v := headers[key]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	c.SessionID = first(HeaderSessionID)
	c.MessageID = first(HeaderMessageID)
	c.Principal = first(HeaderPrincipal)
	c.Traceparent = first(HeaderTraceparent)
	if text := first(HeaderSeq); text != "" {
		seq, err := strconv.ParseUint(text, 10, 64)
		if err != nil || seq == 0 {
			c.invalid = newFault(codes.InvalidArgument, ReasonInvalidSeq, "sb-seq must be a positive decimal integer", nil)
		}
		c.Seq = seq
	}
	for key, values := range headers {
		if !isCustomHeader(key) || len(values) == 0 {
			continue
		}
		if strings.HasSuffix(key, "-bin") {
			encoded := make([]string, len(values))
			for i, v := range values {
				encoded[i] = normalizeBinary(v, rawBinary)
			}
			c.Metadata[key] = strings.Join(encoded, ",")
			continue
		}
		c.Metadata[key] = strings.Join(values, ", ")
	}
	return c
}

// transportHeaders belong to one hop, never to the call's metadata (Observed.metadata).
var transportHeaders = map[string]bool{
	"content-type": true, "te": true, "user-agent": true, "host": true,
	"content-length": true, "connection": true, "keep-alive": true,
	"transfer-encoding": true, "upgrade": true, "accept": true,
	"accept-encoding": true, "content-encoding": true, "trailer": true,
	"proxy-connection": true, "expect": true, "date": true,
}

func isCustomHeader(key string) bool {
	switch {
	case key == "" || strings.HasPrefix(key, ":"):
		return false
	case transportHeaders[key]:
		return false
	case strings.HasPrefix(key, "grpc-"), strings.HasPrefix(key, "connect-"),
		strings.HasPrefix(key, "nats-"), strings.HasPrefix(key, "sb-"):
		return false
	case key == HeaderTraceparent:
		return false
	}
	return true
}

// normalizeBinary is a `-bin` value as standard padded base64, whichever form arrived.
func normalizeBinary(value string, raw bool) string {
	if raw {
		return base64.StdEncoding.EncodeToString([]byte(value))
	}
	trimmed := strings.TrimRight(value, "=")
	for _, enc := range []*base64.Encoding{base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(trimmed); err == nil {
			return base64.StdEncoding.EncodeToString(b)
		}
	}
	return value
}

// lowerHeaders is headers with lower-case keys, values in order.
func lowerHeaders(h map[string][]string) map[string][]string {
	out := make(map[string][]string, len(h))
	for k, v := range h {
		key := strings.ToLower(k)
		out[key] = append(out[key], v...)
	}
	return out
}
