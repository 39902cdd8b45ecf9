import { copyBytes } from "./record-copy.js";
import type {
  EndReason,
  IdempotencyRecord,
  JournalRecord,
  OutboxRecord,
  SessionRecord,
  SessionState,
} from "./records.js";
import { exchangeIdOf, exchangeKey } from "./sqlite-exchange-key.js";

/**
 * Records ⇄ SQLite rows. Absent values are NULL in the database and undefined in records;
 * the correlation map is JSON text.
 */

export interface SessionRow {
  id: string;
  service: string;
  state: string;
  end_reason: string | null;
  correlation_set: string | null;
  correlation: string;
  correlation_key: string | null;
  principal: string;
  created_at_ms: number;
  last_active_at_ms: number;
  ended_at_ms: number | null;
  idle_timeout_ms: number;
  max_lifetime_ms: number;
  next_seq: number;
  journal_length: number;
}

/** A session row as stored: see sqlite-session-tail.ts for written_at_idx. */
export interface StoredSessionRow extends SessionRow {
  written_at_idx: number;
}

/** A journal row: the session by its integer key (session_keys), see sqlite-schema.ts. */
export interface JournalRow {
  session_key: number;
  idx: number;
  message_id: string;
  kind: number;
  seq: number;
  in_reply_to: string;
  exchange: number;
  recorded_at_ms: number;
  envelope: Uint8Array;
}

export interface OutboxRow {
  session_id: string;
  message_id: string;
  idx: number;
}

export interface IdempotencyRow {
  principal: string;
  key: string;
  request_hash: string;
  operation: string;
  session_id: string | null;
  message_id: string;
  created_at_ms: number;
  outcome: Uint8Array | null;
}

/** An idempotency row as stored: the outcome may be a journal entry's (see sqlite-schema.ts). */
export interface StoredIdempotencyRow extends IdempotencyRow {
  outcome_idx: number | null;
}

export function sessionToRow(s: SessionRecord): SessionRow {
  return {
    id: s.id,
    service: s.service,
    state: s.state,
    end_reason: s.endReason ?? null,
    correlation_set: s.correlationSet ?? null,
    correlation: JSON.stringify(s.correlation),
    correlation_key: s.correlationKey ?? null,
    principal: s.principal,
    created_at_ms: s.createdAtMs,
    last_active_at_ms: s.lastActiveAtMs,
    ended_at_ms: s.endedAtMs ?? null,
    idle_timeout_ms: s.idleTimeoutMs,
    max_lifetime_ms: s.maxLifetimeMs,
    next_seq: s.nextSeq,
    journal_length: s.journalLength,
  };
}

export function rowToSession(r: SessionRow): SessionRecord {
  return {
    id: r.id,
    service: r.service,
    state: r.state as SessionState,
    endReason: (r.end_reason ?? undefined) as EndReason | undefined,
    correlationSet: r.correlation_set ?? undefined,
    correlation: JSON.parse(r.correlation) as Record<string, string>,
    correlationKey: r.correlation_key ?? undefined,
    principal: r.principal,
    createdAtMs: r.created_at_ms,
    lastActiveAtMs: r.last_active_at_ms,
    endedAtMs: r.ended_at_ms ?? undefined,
    idleTimeoutMs: r.idle_timeout_ms,
    maxLifetimeMs: r.max_lifetime_ms,
    nextSeq: r.next_seq,
    journalLength: r.journal_length,
  };
}

/**
 * The values of a journal row in column order (session_key, idx, message_id, kind, seq,
 * in_reply_to, exchange, recorded_at_ms, envelope), for the writer's insert: positional
 * parameters bind without looking each name up on an object, and every commit inserts.
 */
export type JournalParams = [number, number, string, number, number, string, number, number, Buffer];

export function entryToParams(e: JournalRecord, sessionKey: number): JournalParams {
  return [
    sessionKey,
    e.index,
    e.messageId,
    e.kind,
    e.seq,
    e.inReplyTo,
    exchangeKey(exchangeIdOf(e.messageId, e.inReplyTo)),
    e.recordedAtMs,
    asBlob(e.envelope),
  ];
}

/** The entry a row holds; the row names its session by key, the caller knows its id. */
export function rowToEntry(r: JournalRow, sessionId: string): JournalRecord {
  return {
    sessionId,
    index: r.idx,
    messageId: r.message_id,
    kind: r.kind,
    seq: r.seq,
    inReplyTo: r.in_reply_to,
    recordedAtMs: r.recorded_at_ms,
    envelope: copyBytes(r.envelope),
  };
}

export function outboxToRow(o: OutboxRecord): OutboxRow {
  return { session_id: o.sessionId, message_id: o.messageId, idx: o.index };
}

export function rowToOutbox(r: OutboxRow): OutboxRecord {
  return { sessionId: r.session_id, messageId: r.message_id, index: r.idx };
}

export function idempotencyToRow(i: IdempotencyRecord): IdempotencyRow {
  return {
    principal: i.principal,
    key: i.key,
    request_hash: i.requestHash,
    operation: i.operation,
    session_id: i.sessionId ?? null,
    message_id: i.messageId,
    created_at_ms: i.createdAtMs,
    outcome: i.outcome === undefined ? null : asBlob(i.outcome),
  };
}

export function rowToIdempotency(r: IdempotencyRow): IdempotencyRecord {
  return {
    principal: r.principal,
    key: r.key,
    requestHash: r.request_hash,
    operation: r.operation,
    sessionId: r.session_id ?? undefined,
    messageId: r.message_id,
    createdAtMs: r.created_at_ms,
    outcome: r.outcome === null ? undefined : copyBytes(r.outcome),
  };
}

/** better-sqlite3 binds Buffers as BLOBs; a view over the same memory avoids a copy. */
function asBlob(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
