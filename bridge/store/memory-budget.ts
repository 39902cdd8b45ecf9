import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { IdempotencyRecord, OutboxRecord, SessionRecord } from "./records.js";

/**
 * Fixed costs per record on top of its encoded bytes, measured on Node 20 (x64) by holding
 * 100,000 records of each kind and weighing heap plus ArrayBuffer memory after a full
 * collection: a journal entry (100-byte envelope, 22-character ids) took 259 bytes, of
 * which 161 were its packed bytes (memory-journal.ts); the rest is its slot in the position
 * list, its share of the id lookup and of the chunks' unused tails. A session with one
 * correlation value and a key took 523 bytes, an idempotency record with a 100-byte outcome
 * 898 (its outcome is an ArrayBuffer of its own), an outbox item 158. Chunks of dropped
 * journals kept for reuse (memory-chunks.ts) are not accounted: the store bounds them to a
 * sixteenth of its budget.
 */
export const ENTRY_OVERHEAD_BYTES = 100;
export const SESSION_OVERHEAD_BYTES = 360;
export const KEY_OVERHEAD_BYTES = 64;
export const IDEMPOTENCY_OVERHEAD_BYTES = 660;
export const OUTBOX_OVERHEAD_BYTES = 136;

/**
 * The share of the budget kept for work already admitted: a commit that admits new work
 * (a new session, a request, a new idempotency key) must leave this much free, so the
 * outcome of a request the process has seen, and the end of a session, are recorded (S9)
 * unless the store is truly full. One eighth of the budget.
 */
export function admissionLimitOf(maxMemoryBytes: number): number {
  return maxMemoryBytes - Math.floor(maxMemoryBytes / 8);
}

export function sessionBytes(s: SessionRecord): number {
  let bytes = SESSION_OVERHEAD_BYTES + s.id.length + s.service.length + s.principal.length;
  bytes += (s.correlationSet?.length ?? 0) + (s.correlationKey?.length ?? 0);
  for (const name in s.correlation) bytes += name.length + (s.correlation[name]?.length ?? 0);
  return bytes;
}

/** A correlation key held in the live index (S5). */
export function keyBytes(key: string): number {
  return KEY_OVERHEAD_BYTES + key.length;
}

export function idempotencyBytes(r: IdempotencyRecord): number {
  return (
    IDEMPOTENCY_OVERHEAD_BYTES +
    r.principal.length +
    r.key.length +
    r.requestHash.length +
    r.operation.length +
    (r.sessionId?.length ?? 0) +
    r.messageId.length +
    (r.outcome?.byteLength ?? 0)
  );
}

export function outboxBytes(o: OutboxRecord): number {
  return OUTBOX_OVERHEAD_BYTES + o.messageId.length;
}

/**
 * DESIGN §7 (no client grows memory without bound): the memory store holds all it may,
 * and refused the batch before recording or delivering anything of it (S9: nothing of it
 * is acknowledged). Space comes back as sessions end and idempotency records are purged.
 */
export function storeFull(neededBytes: number, heldBytes: number, limitBytes: number): BridgeError {
  return new BridgeError(
    Code.RESOURCE_EXHAUSTED,
    Reason.STORE_FULL,
    `the memory store is full: ${neededBytes} more bytes would exceed ${limitBytes} (holding ${heldBytes}); end sessions or raise storeOptions.maxMemoryBytes`,
    {
      metadata: {
        needed_bytes: String(neededBytes),
        held_bytes: String(heldBytes),
        limit_bytes: String(limitBytes),
      },
    },
  );
}

export function invalidBudget(maxMemoryBytes: unknown): BridgeError {
  return new BridgeError(
    Code.INVALID_ARGUMENT,
    Reason.INVALID_CONFIG,
    `maxMemoryBytes must be a positive integer, got ${String(maxMemoryBytes)}`,
  );
}
