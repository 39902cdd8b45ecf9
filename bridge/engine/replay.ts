import type { UnaryReply } from "../call/call.js";
import type { Metadata } from "../call/metadata.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { RecordedExchange } from "../store/session-store.js";
import { decodeEnvelope, type Envelope, EnvelopeKind, errorOf } from "./envelope-codec.js";
import { withSession } from "./session-errors.js";

/**
 * Recorded outcomes returned again without a second delivery (S7 duplicates, S8
 * retries). The reply carries the original session and message ids.
 */
export function replayFromEnvelope(
  envelope: Envelope,
  sessionId: string | undefined,
  messageId: string,
): UnaryReply {
  if (envelope.kind === EnvelopeKind.ENVELOPE_KIND_FAULT && envelope.fault !== undefined) {
    const fault = errorOf(envelope.fault);
    const headers = unflatten(envelope.metadata);
    throw withSession(
      Object.keys(headers).length === 0
        ? fault
        : new BridgeError(fault.code, fault.reason, fault.message, {
            metadata: fault.metadata,
            details: fault.details,
            fromProcess: fault.fromProcess,
            headers,
          }),
      sessionId,
      messageId,
    );
  }
  return {
    payload: envelope.kind === EnvelopeKind.ENVELOPE_KIND_RESPONSE ? envelope.payload : new Uint8Array(0),
    sessionId,
    messageId,
    headers: unflatten(envelope.metadata),
    trailers: {},
  };
}

/** The final outcome of a recorded exchange, or undefined if it never got one (S10). */
export function finalOutcome(exchange: RecordedExchange): Envelope | undefined {
  const request = decodeEnvelope(exchange.request.envelope);
  // A one-way call's caller was answered when it was journaled: its outcome is the ack.
  if (request.kind === EnvelopeKind.ENVELOPE_KIND_ONE_WAY) {
    return { ...request, kind: EnvelopeKind.ENVELOPE_KIND_ACK, payload: Buffer.alloc(0), metadata: {} };
  }
  for (let i = exchange.outcomes.length - 1; i >= 0; i--) {
    const entry = exchange.outcomes[i];
    if (entry === undefined) continue;
    const kind = entry.kind;
    if (kind === EnvelopeKind.ENVELOPE_KIND_RESPONSE || kind === EnvelopeKind.ENVELOPE_KIND_FAULT) {
      return decodeEnvelope(entry.envelope);
    }
  }
  return undefined;
}

export function outcomeNotRecorded(messageId: string): BridgeError {
  return new BridgeError(
    Code.UNAVAILABLE,
    Reason.STORE_FAILURE,
    `the outcome of message ${messageId} was not recorded; retry later`,
  );
}

/** Journal metadata holds repeated values joined as HTTP joins them; they replay as one value. */
function unflatten(flat: Readonly<Record<string, string>>): Metadata {
  const out: Record<string, readonly string[]> = {};
  for (const [key, value] of Object.entries(flat)) out[key] = [value];
  return out;
}
