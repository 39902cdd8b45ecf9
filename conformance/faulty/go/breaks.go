package main

import (
	"google.golang.org/grpc/codes"

	"sessionbridge.dev/conformance/lab-go/lab"
)

// breaks are the faulty services: each is the reference service with exactly one
// deviation, at one of the points lab.Deviation names, so the suite must blame exactly
// one rule. Every deviation is deterministic: it shows on every run, not by timing.
var breaks = map[string]struct {
	rule      string
	deviation lab.Deviation
}{
	"shared-state":      {"S1", sharedState{}},
	"duplicate-seq":     {"S7", duplicateSeq{}},
	"ignore-message-id": {"S10", ignoreMessageID{}},
	"unknown-codes":     {"S14", unknownCodes{}},
}

// sharedState keeps one log per service instead of one per session: whatever one
// session appends, every other session of the service sees (breaks S1). Session
// lifecycle, sequence numbers and redelivery records stay per session.
type sharedState struct{ lab.Conformant }

func (sharedState) LogKey(service, _ string) string { return service }

// duplicateSeq applies a sequence number already applied a second time instead of
// answering its recorded outcome (breaks S7).
type duplicateSeq struct{ lab.Conformant }

func (duplicateSeq) ReplaysDuplicateSeq() bool { return false }

// ignoreMessageID applies a redelivered sb-message-id again (breaks S10).
type ignoreMessageID struct{ lab.Conformant }

func (ignoreMessageID) DedupesMessageIDs() bool { return false }

// unknownCodes answers every instructed fault with UNKNOWN, keeping its message,
// reason and details (breaks S14). The service's own faults keep their codes.
type unknownCodes struct{ lab.Conformant }

func (unknownCodes) InstructedCode(codes.Code) codes.Code { return codes.Unknown }
