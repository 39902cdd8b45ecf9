import type { KV } from "@nats-io/kv";
import { encodeJson, idempotencyToJson, outboxKey, sessionToJson, token } from "./jetstream-codec.js";
import type { JetStreamJournals } from "./jetstream-journal.js";
import { checkJournalAppend } from "./journal-append.js";
import type { JournalRecord } from "./records.js";
import type { StoreBatch } from "./session-store.js";

/**
 * The two halves of a batch around its commit point (jetstream-write-ahead.ts): the S9
 * check before it, and the writes after it, each safe to repeat, so a batch can be
 * applied again by whoever finds it last on a write-ahead subject.
 */
export interface BatchApply {
  /**
   * S9 before the commit point: the batch's entries must continue each session's stored
   * journal (checkJournalAppend), else the whole batch is refused with JOURNAL_CONFLICT
   * and nothing is written.
   */
  checkEntries(entries: readonly JournalRecord[]): Promise<void>;
  /** Step (3): every part of a committed batch, each write safe to repeat. */
  apply(batch: StoreBatch): Promise<void>;
}

export function createBatchApply(
  buckets: { sessions: KV; idempotency: KV; outbox: KV },
  journals: JetStreamJournals,
): BatchApply {
  return {
    async checkEntries(entries) {
      const last = new Map<string, number>();
      for (const entry of entries) {
        if (!last.has(entry.sessionId)) last.set(entry.sessionId, await journals.lastIndex(entry.sessionId));
      }
      checkJournalAppend(entries, (sessionId) => last.get(sessionId) ?? 0);
    },

    async apply(batch) {
      const bySession = new Map<string, JournalRecord[]>();
      for (const entry of batch.entries ?? []) {
        const list = bySession.get(entry.sessionId);
        if (list === undefined) bySession.set(entry.sessionId, [entry]);
        else list.push(entry);
      }
      for (const [sessionId, entries] of bySession) await journals.append(sessionId, entries);
      for (const record of batch.sessions ?? []) {
        await buckets.sessions.put(token(record.id), encodeJson(sessionToJson(record)));
      }
      for (const record of batch.idempotency ?? []) {
        await buckets.idempotency.put(
          `${token(record.principal)}.${token(record.key)}`,
          encodeJson(idempotencyToJson(record)),
        );
      }
      for (const item of batch.outboxAdd ?? []) {
        await buckets.outbox.put(outboxKey(item.sessionId, item.messageId), encodeJson(item));
      }
      for (const item of batch.outboxRemove ?? []) {
        await buckets.outbox.purge(outboxKey(item.sessionId, item.messageId));
      }
    },
  };
}
