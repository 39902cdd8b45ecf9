package lab

import "google.golang.org/grpc/codes"

// Deviation names every point where a faulty service departs from the lab contract.
// The reference service runs with Conformant, which departs nowhere; the faulty
// services (conformance/faulty/go) each override exactly one method, so that the suite
// can blame exactly one rule. Nothing else in this package differs between them.
type Deviation interface {
	// LogKey is where a session's log lives. Conformant: one log per session (S1).
	LogKey(service, sessionID string) string
	// ReplaysDuplicateSeq says whether a sequence number already applied answers its
	// recorded outcome (S7). Conformant: true.
	ReplaysDuplicateSeq() bool
	// DedupesMessageIDs says whether a redelivered sb-message-id answers its recorded
	// outcome (S10). Conformant: true.
	DedupesMessageIDs() bool
	// InstructedCode is the code answered for Instruction.fail (S14). Conformant: the
	// code asked for.
	InstructedCode(asked codes.Code) codes.Code
}

// Conformant is the reference behaviour: no deviation at all.
type Conformant struct{}

func (Conformant) LogKey(service, sessionID string) string    { return service + "/" + sessionID }
func (Conformant) ReplaysDuplicateSeq() bool                  { return true }
func (Conformant) DedupesMessageIDs() bool                    { return true }
func (Conformant) InstructedCode(asked codes.Code) codes.Code { return asked }
