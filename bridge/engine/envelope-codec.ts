import type { Timestamp } from "../../sdk/gen/google/protobuf/timestamp.js";
import {
  type Envelope,
  EnvelopeKind,
  Envelope as EnvelopeMessage,
  type Fault,
} from "../../sdk/gen/sessionbridge/v1/envelope.js";
import { BridgeError } from "../errors/bridge-error.js";
import { codeFromNumber } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import { writeEnvelope } from "./envelope-writer.js";

export type { Envelope, Fault };
export { EnvelopeKind };

/** The fields the engine sets on an envelope; everything else takes its proto3 default. */
export interface EnvelopeFields {
  readonly kind: EnvelopeKind;
  readonly messageId: string;
  /** Or given to makeEnvelope() on its own. */
  readonly sessionId?: string;
  readonly operation: string;
  readonly principal: string;
  readonly timeMs: number;
  readonly payload?: Uint8Array;
  readonly codec?: string;
  readonly seq?: number;
  readonly correlation?: Readonly<Record<string, string>>;
  readonly metadata?: Readonly<Record<string, string>>;
  readonly deadlineMs?: number | undefined;
  readonly traceparent?: string | undefined;
  readonly tracestate?: string | undefined;
  readonly fault?: Fault;
  readonly inReplyTo?: string;
  readonly idempotencyKey?: string | undefined;
}

export function toTimestamp(ms: number): Timestamp {
  const seconds = Math.floor(ms / 1000);
  return { seconds, nanos: Math.round((ms - seconds * 1000) * 1e6) };
}

function asBuffer(bytes: Uint8Array | undefined): Buffer {
  if (bytes === undefined) return Buffer.alloc(0);
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

const NO_ENTRIES: Readonly<Record<string, string>> = Object.freeze({});
const EMPTY = Buffer.alloc(0);
const scratchTime: Timestamp = { seconds: 0, nanos: 0 };
const scratch: Envelope = makeEnvelope({ kind: 0, messageId: "", operation: "", principal: "", timeMs: 0 });
scratch.time = scratchTime;

/**
 * An Envelope over the given fields. The maps are shared, not copied: envelopes made here
 * are encoded and dropped, never changed.
 */
export function makeEnvelope(fields: EnvelopeFields, sessionId: string = fields.sessionId ?? ""): Envelope {
  return {
    messageId: fields.messageId,
    sessionId,
    correlation: (fields.correlation ?? NO_ENTRIES) as Record<string, string>,
    seq: fields.seq ?? 0,
    operation: fields.operation,
    kind: fields.kind,
    payload: asBuffer(fields.payload),
    codec: fields.codec ?? "",
    metadata: (fields.metadata ?? NO_ENTRIES) as Record<string, string>,
    deadline: fields.deadlineMs === undefined ? undefined : toTimestamp(fields.deadlineMs),
    principal: fields.principal,
    traceparent: fields.traceparent ?? "",
    tracestate: fields.tracestate ?? "",
    fault: fields.fault,
    inReplyTo: fields.inReplyTo ?? "",
    time: toTimestamp(fields.timeMs),
    idempotencyKey: fields.idempotencyKey ?? "",
  };
}

export function encodeEnvelope(envelope: Envelope): Uint8Array {
  return writeEnvelope(envelope);
}

/**
 * The envelope makeEnvelope() would give, encoded without building it: a journal entry
 * needs only the bytes, and every call records two. One Envelope and its time stamp are
 * reused, which is safe because writing is synchronous; the references are dropped after
 * each write so nothing stays reachable through them.
 */
export function encodeFields(fields: EnvelopeFields, sessionId: string): Uint8Array {
  const e = scratch;
  const time = scratchTime;
  e.messageId = fields.messageId;
  e.sessionId = sessionId;
  e.correlation = (fields.correlation ?? NO_ENTRIES) as Record<string, string>;
  e.seq = fields.seq ?? 0;
  e.operation = fields.operation;
  e.kind = fields.kind;
  e.payload = asBuffer(fields.payload);
  e.codec = fields.codec ?? "";
  e.metadata = (fields.metadata ?? NO_ENTRIES) as Record<string, string>;
  e.deadline = fields.deadlineMs === undefined ? undefined : toTimestamp(fields.deadlineMs);
  e.principal = fields.principal;
  e.traceparent = fields.traceparent ?? "";
  e.tracestate = fields.tracestate ?? "";
  e.fault = fields.fault;
  e.inReplyTo = fields.inReplyTo ?? "";
  const seconds = Math.floor(fields.timeMs / 1000);
  time.seconds = seconds;
  time.nanos = Math.round((fields.timeMs - seconds * 1000) * 1e6);
  e.idempotencyKey = fields.idempotencyKey ?? "";
  try {
    return writeEnvelope(e);
  } finally {
    e.correlation = NO_ENTRIES as Record<string, string>;
    e.payload = EMPTY;
    e.metadata = NO_ENTRIES as Record<string, string>;
    e.deadline = undefined;
    e.fault = undefined;
  }
}

export function decodeEnvelope(bytes: Uint8Array): Envelope {
  return EnvelopeMessage.decode(bytes);
}

/** S14: one fault model; the details a process declared pass through unchanged. */
export function faultOf(error: BridgeError): Fault {
  return {
    code: error.code,
    reason: error.reason,
    message: error.message,
    details: error.details.map((d) => ({ typeUrl: d.typeUrl, value: asBuffer(d.value) })),
    metadata: { ...error.metadata },
  };
}

export function errorOf(fault: Fault): BridgeError {
  const reason = fault.reason || Reason.PROCESS_FAULT;
  return new BridgeError(codeFromNumber(fault.code), reason, fault.message, {
    // A recorded process fault is replayed as the process answered it (S7, S14).
    fromProcess: reason === Reason.PROCESS_FAULT,
    metadata: fault.metadata,
    details: fault.details.map((d) => ({ typeUrl: d.typeUrl, value: d.value })),
  });
}
