import type {
  IdempotencyRecord,
  JournalRecord,
  OutboxRecord,
  SessionRecord,
} from "../../../bridge/store/records.js";

/** Record builders for store tests: every field set to something recognisable. */

export function session(id: string, fields: Partial<SessionRecord> = {}): SessionRecord {
  return {
    id,
    service: "shop.v1.Orders",
    state: "active",
    endReason: undefined,
    correlationSet: undefined,
    correlation: {},
    correlationKey: undefined,
    principal: "alice",
    createdAtMs: 1_000,
    lastActiveAtMs: 1_000,
    endedAtMs: undefined,
    idleTimeoutMs: 60_000,
    maxLifetimeMs: 3_600_000,
    nextSeq: 1,
    journalLength: 0,
    ...fields,
  };
}

/** A session that has ended: not live, so its correlation values are free again (S5). */
export function ended(record: SessionRecord, endedAtMs: number): SessionRecord {
  return { ...record, state: "closed", endReason: "closed", endedAtMs };
}

export function entry(sessionId: string, index: number, fields: Partial<JournalRecord> = {}): JournalRecord {
  return {
    sessionId,
    index,
    messageId: `${sessionId}-m${index}`,
    kind: 1,
    seq: 0,
    inReplyTo: "",
    recordedAtMs: 2_000 + index,
    envelope: new Uint8Array([index & 0xff, 0xab, 0xcd]),
    ...fields,
  };
}

export function idempotency(
  principal: string,
  key: string,
  fields: Partial<IdempotencyRecord> = {},
): IdempotencyRecord {
  return {
    principal,
    key,
    requestHash: `hash-of-${key}`,
    operation: "/shop.v1.Orders/Place",
    sessionId: undefined,
    messageId: `msg-${key}`,
    createdAtMs: 5_000,
    outcome: undefined,
    ...fields,
  };
}

export function outbox(sessionId: string, index: number): OutboxRecord {
  return { sessionId, messageId: `${sessionId}-m${index}`, index };
}
