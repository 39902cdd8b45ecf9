import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import { randomView } from "./ids.js";
import { firstValue, Header, type Metadata } from "./metadata.js";

/** The bridge's own control fields, read from the caller's metadata once, at the edge. */
export interface CallControl {
  /** S1: resume a session by id. */
  readonly sessionId: string | undefined;
  /** S7: client sequence number, a positive integer. */
  readonly seq: number | undefined;
  /** S8. */
  readonly idempotencyKey: string | undefined;
  /** S15: W3C trace context; a fresh one when the caller sent none or an invalid one. */
  readonly traceparent: string;
  readonly tracestate: string | undefined;
}

const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;
const SEQ = /^[1-9][0-9]{0,15}$/;
const IDEMPOTENCY_KEY = /^[\x20-\x7e]{1,255}$/;
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** Parses the control headers; malformed values are INVALID_ARGUMENT, never ignored (S4). */
export function readControl(metadata: Metadata): CallControl {
  const sessionId = firstValue(metadata, Header.sessionId);
  if (sessionId !== undefined && !SESSION_ID.test(sessionId)) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_SESSION_ID,
      `${Header.sessionId} must be a session id (1-128 URL-safe characters), got ${JSON.stringify(sessionId.slice(0, 64))}`,
    );
  }
  const seqText = firstValue(metadata, Header.seq);
  let seq: number | undefined;
  if (seqText !== undefined) {
    const n = Number(seqText);
    if (!SEQ.test(seqText) || !Number.isSafeInteger(n)) {
      throw new BridgeError(
        Code.INVALID_ARGUMENT,
        Reason.INVALID_SEQ,
        `${Header.seq} must be a positive integer, got ${JSON.stringify(seqText.slice(0, 32))}`,
      );
    }
    seq = n;
  }
  const idempotencyKey = firstValue(metadata, Header.idempotencyKey);
  if (idempotencyKey !== undefined && !IDEMPOTENCY_KEY.test(idempotencyKey)) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_IDEMPOTENCY_KEY,
      `${Header.idempotencyKey} must be 1-255 printable ASCII characters`,
    );
  }
  const incoming = firstValue(metadata, Header.traceparent);
  const valid = incoming !== undefined && isValidTraceparent(incoming);
  return {
    sessionId,
    seq,
    idempotencyKey,
    traceparent: valid ? incoming : newTraceparent(),
    // tracestate belongs to the trace it came with; a restarted trace drops it (W3C §3.3).
    tracestate: valid ? firstValue(metadata, Header.tracestate) : undefined,
  };
}

function isValidTraceparent(value: string): boolean {
  const match = TRACEPARENT.exec(value);
  if (match === null) return false;
  const [, version, traceId, parentId] = match;
  if (version === "ff" || /^0+$/.test(traceId ?? "") || /^0+$/.test(parentId ?? "")) return false;
  // Version 00 has exactly four fields; later versions may append more.
  return version !== "00" || match[5] === undefined;
}

/** A new, unsampled trace context for calls that arrive without one. */
export function newTraceparent(): string {
  const bytes = randomView(24);
  return `00-${bytes.toString("hex", 0, 16)}-${bytes.toString("hex", 16, 24)}-00`;
}
