import type { IdempotencyRecord, JournalRecord, OutboxRecord, SessionRecord } from "./records.js";
import type { StoreBatch } from "./session-store.js";

/**
 * How the JetStream store writes records: JSON with bytes as base64, and names made of
 * characters every subject token and KV key accepts. Decoders rebuild every field
 * explicitly, so a record read back equals the one committed, unset fields included.
 */

/** A subject token / KV key part for any text: "t" + base64url (never empty, never a '.'). */
export function token(text: string): string {
  return `t${Buffer.from(text, "utf8").toString("base64url")}`;
}

export function fromToken(value: string): string {
  return Buffer.from(value.slice(1), "base64url").toString("utf8");
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export function encodeJson(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

export function decodeJson(bytes: Uint8Array): Record<string, unknown> {
  const parsed: unknown = JSON.parse(decoder.decode(bytes));
  if (parsed === null || typeof parsed !== "object") throw new Error("stored record is not an object");
  return parsed as Record<string, unknown>;
}

function bytesToText(bytes: Uint8Array): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString("base64");
}

function textToBytes(text: unknown): Uint8Array {
  return new Uint8Array(Buffer.from(String(text), "base64"));
}

function optionalText(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function optionalNumber(value: unknown): number | undefined {
  return typeof value === "number" ? value : undefined;
}

export function sessionToJson(s: SessionRecord): Record<string, unknown> {
  return {
    id: s.id,
    service: s.service,
    state: s.state,
    endReason: s.endReason ?? null,
    correlationSet: s.correlationSet ?? null,
    correlation: s.correlation,
    correlationKey: s.correlationKey ?? null,
    principal: s.principal,
    createdAtMs: s.createdAtMs,
    lastActiveAtMs: s.lastActiveAtMs,
    endedAtMs: s.endedAtMs ?? null,
    idleTimeoutMs: s.idleTimeoutMs,
    maxLifetimeMs: s.maxLifetimeMs,
    nextSeq: s.nextSeq,
    journalLength: s.journalLength,
  };
}

export function sessionFromJson(j: Record<string, unknown>): SessionRecord {
  return {
    id: String(j.id),
    service: String(j.service),
    state: j.state as SessionRecord["state"],
    endReason: (optionalText(j.endReason) as SessionRecord["endReason"]) ?? undefined,
    correlationSet: optionalText(j.correlationSet),
    correlation: { ...(j.correlation as Record<string, string>) },
    correlationKey: optionalText(j.correlationKey),
    principal: String(j.principal),
    createdAtMs: Number(j.createdAtMs),
    lastActiveAtMs: Number(j.lastActiveAtMs),
    endedAtMs: optionalNumber(j.endedAtMs),
    idleTimeoutMs: Number(j.idleTimeoutMs),
    maxLifetimeMs: Number(j.maxLifetimeMs),
    nextSeq: Number(j.nextSeq),
    journalLength: Number(j.journalLength),
  };
}

export function entryToJson(e: JournalRecord): Record<string, unknown> {
  return {
    sessionId: e.sessionId,
    index: e.index,
    messageId: e.messageId,
    kind: e.kind,
    seq: e.seq,
    inReplyTo: e.inReplyTo,
    recordedAtMs: e.recordedAtMs,
    envelope: bytesToText(e.envelope),
  };
}

export function entryFromJson(j: Record<string, unknown>): JournalRecord {
  return {
    sessionId: String(j.sessionId),
    index: Number(j.index),
    messageId: String(j.messageId),
    kind: Number(j.kind),
    seq: Number(j.seq),
    inReplyTo: String(j.inReplyTo),
    recordedAtMs: Number(j.recordedAtMs),
    envelope: textToBytes(j.envelope),
  };
}

export function idempotencyToJson(r: IdempotencyRecord): Record<string, unknown> {
  return {
    principal: r.principal,
    key: r.key,
    requestHash: r.requestHash,
    operation: r.operation,
    sessionId: r.sessionId ?? null,
    messageId: r.messageId,
    createdAtMs: r.createdAtMs,
    outcome: r.outcome === undefined ? null : bytesToText(r.outcome),
  };
}

export function idempotencyFromJson(j: Record<string, unknown>): IdempotencyRecord {
  return {
    principal: String(j.principal),
    key: String(j.key),
    requestHash: String(j.requestHash),
    operation: String(j.operation),
    sessionId: optionalText(j.sessionId),
    messageId: String(j.messageId),
    createdAtMs: Number(j.createdAtMs),
    outcome: typeof j.outcome === "string" ? textToBytes(j.outcome) : undefined,
  };
}

export function outboxFromJson(j: Record<string, unknown>): OutboxRecord {
  return { sessionId: String(j.sessionId), messageId: String(j.messageId), index: Number(j.index) };
}

/** A whole batch as one write-ahead message: the store's commit point. */
export function batchToJson(batch: StoreBatch): Record<string, unknown> {
  return {
    sessions: (batch.sessions ?? []).map(sessionToJson),
    entries: (batch.entries ?? []).map(entryToJson),
    idempotency: (batch.idempotency ?? []).map(idempotencyToJson),
    outboxAdd: batch.outboxAdd ?? [],
    outboxRemove: (batch.outboxRemove ?? []).map((o) => ({ sessionId: o.sessionId, messageId: o.messageId })),
  };
}

export function batchFromJson(j: Record<string, unknown>): StoreBatch {
  const list = (value: unknown): Record<string, unknown>[] =>
    Array.isArray(value) ? (value as Record<string, unknown>[]) : [];
  return {
    sessions: list(j.sessions).map(sessionFromJson),
    entries: list(j.entries).map(entryFromJson),
    idempotency: list(j.idempotency).map(idempotencyFromJson),
    outboxAdd: list(j.outboxAdd).map(outboxFromJson),
    outboxRemove: list(j.outboxRemove).map((o) => ({
      sessionId: String(o.sessionId),
      messageId: String(o.messageId),
    })),
  };
}

/** The key of an S10 outbox record: session, then message. */
export function outboxKey(sessionId: string, messageId: string): string {
  return `${token(sessionId)}.${token(messageId)}`;
}
