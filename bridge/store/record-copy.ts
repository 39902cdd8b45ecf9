import type { IdempotencyRecord, JournalRecord, OutboxRecord, SessionRecord } from "./records.js";
import type { StoreBatch } from "./session-store.js";

/**
 * Copies of records, so a caller that keeps mutating its objects or buffers after a call
 * cannot change what a store holds, and a store cannot hand out its own state.
 */

export function copySession(s: SessionRecord): SessionRecord {
  return {
    id: s.id,
    service: s.service,
    state: s.state,
    endReason: s.endReason,
    correlationSet: s.correlationSet,
    correlation: { ...s.correlation },
    correlationKey: s.correlationKey,
    principal: s.principal,
    createdAtMs: s.createdAtMs,
    lastActiveAtMs: s.lastActiveAtMs,
    endedAtMs: s.endedAtMs,
    idleTimeoutMs: s.idleTimeoutMs,
    maxLifetimeMs: s.maxLifetimeMs,
    nextSeq: s.nextSeq,
    journalLength: s.journalLength,
  };
}

export function copyEntry(e: JournalRecord): JournalRecord {
  return {
    sessionId: e.sessionId,
    index: e.index,
    messageId: e.messageId,
    kind: e.kind,
    seq: e.seq,
    inReplyTo: e.inReplyTo,
    recordedAtMs: e.recordedAtMs,
    envelope: copyBytes(e.envelope),
  };
}

export function copyIdempotency(r: IdempotencyRecord): IdempotencyRecord {
  return {
    principal: r.principal,
    key: r.key,
    requestHash: r.requestHash,
    operation: r.operation,
    sessionId: r.sessionId,
    messageId: r.messageId,
    createdAtMs: r.createdAtMs,
    outcome: r.outcome === undefined ? undefined : copyBytes(r.outcome),
  };
}

export function copyOutbox(o: OutboxRecord): OutboxRecord {
  return { sessionId: o.sessionId, messageId: o.messageId, index: o.index };
}

/** A plain Uint8Array with its own memory (Buffer#slice would share it). */
export function copyBytes(bytes: Uint8Array): Uint8Array {
  return new Uint8Array(bytes);
}

/** A batch that shares nothing with the caller's objects. */
export function copyBatch(batch: StoreBatch): StoreBatch {
  return {
    ...(batch.sessions === undefined ? {} : { sessions: batch.sessions.map(copySession) }),
    ...(batch.entries === undefined ? {} : { entries: batch.entries.map(copyEntry) }),
    ...(batch.idempotency === undefined ? {} : { idempotency: batch.idempotency.map(copyIdempotency) }),
    ...(batch.outboxAdd === undefined ? {} : { outboxAdd: batch.outboxAdd.map(copyOutbox) }),
    ...(batch.outboxRemove === undefined
      ? {}
      : {
          outboxRemove: batch.outboxRemove.map((o) => ({ sessionId: o.sessionId, messageId: o.messageId })),
        }),
  };
}
