import { createMemoryJournal, type MemoryJournal } from "./memory-journal.js";
import { copyEntry, copyIdempotency, copyOutbox, copySession } from "./record-copy.js";
import type { IdempotencyRecord, OutboxRecord, SessionRecord } from "./records.js";
import { compareNewestFirst, compareOldestFirst, compareText } from "./session-order.js";
import type { SessionStore, StoreBatch } from "./session-store.js";
import { correlationTaken, storeClosed, storeFailure } from "./store-errors.js";
import { checkJournalRange, checkPageSize, decodePageToken, encodePageToken } from "./store-query.js";

/**
 * The in-memory store: plain Maps, nothing durable. It answers every query exactly as the
 * SQLite store does (same order, paging, tokens, errors), so tests written against it hold
 * for the durable store; the shared suite checks both.
 */
export function createMemoryStore(): SessionStore {
  const sessions = new Map<string, SessionRecord>();
  const journals = new Map<string, MemoryJournal>();
  const outbox = new Map<string, Map<string, OutboxRecord>>();
  const idempotency = new Map<string, IdempotencyRecord>();
  // S5: correlation key of each live session → its id, the role of SQLite's partial unique index.
  const liveKeys = new Map<string, string>();
  let closed = false;

  const checkOpen = (): void => {
    if (closed) throw storeClosed("memory");
  };

  /**
   * Works out the correlation index after the batch's sessions, one record at a time as
   * SQLite's upserts check them, and throws ALREADY_EXISTS (S5) before anything changes.
   */
  const planSessions = (records: readonly SessionRecord[]): Map<string, string | undefined> => {
    const claims = new Map<string, string | undefined>();
    const staged = new Map<string, SessionRecord>();
    const holder = (key: string): string | undefined =>
      claims.has(key) ? claims.get(key) : liveKeys.get(key);
    for (const next of records) {
      const prevKey = liveKeyOf(staged.get(next.id) ?? sessions.get(next.id));
      staged.set(next.id, next);
      if (prevKey !== undefined && holder(prevKey) === next.id) claims.set(prevKey, undefined);
      const nextKey = liveKeyOf(next);
      if (nextKey === undefined) continue;
      const taken = holder(nextKey);
      if (taken !== undefined && taken !== next.id) throw correlationTaken(next.service, next.id);
      claims.set(nextKey, next.id);
    }
    return claims;
  };

  const checkEntries = (batch: StoreBatch): void => {
    const seen = new Set<string>();
    for (const entry of batch.entries ?? []) {
      const key = `${entry.sessionId}\n${entry.index}`;
      if (seen.has(key) || journals.get(entry.sessionId)?.has(entry.index)) {
        throw storeFailure(`journal entry ${entry.index} of session ${entry.sessionId} already exists`);
      }
      seen.add(key);
    }
  };

  return {
    kind: "memory",

    async commit(batch) {
      checkOpen();
      // Every check comes before the first change, so a rejected batch leaves nothing behind.
      const claims = planSessions(batch.sessions ?? []);
      checkEntries(batch);
      for (const [key, id] of claims) {
        if (id === undefined) liveKeys.delete(key);
        else liveKeys.set(key, id);
      }
      for (const record of batch.sessions ?? []) sessions.set(record.id, copySession(record));
      for (const entry of batch.entries ?? []) {
        let journal = journals.get(entry.sessionId);
        if (journal === undefined) {
          journal = createMemoryJournal();
          journals.set(entry.sessionId, journal);
        }
        journal.add(copyEntry(entry));
      }
      for (const record of batch.idempotency ?? []) {
        idempotency.set(idempotencyKey(record.principal, record.key), copyIdempotency(record));
      }
      for (const item of batch.outboxAdd ?? []) {
        let items = outbox.get(item.sessionId);
        if (items === undefined) {
          items = new Map();
          outbox.set(item.sessionId, items);
        }
        items.set(item.messageId, copyOutbox(item));
      }
      for (const item of batch.outboxRemove ?? []) {
        const items = outbox.get(item.sessionId);
        items?.delete(item.messageId);
        if (items?.size === 0) outbox.delete(item.sessionId);
      }
    },

    async recover() {
      checkOpen();
      const live = [...sessions.values()].filter((s) => s.state === "active").sort(compareOldestFirst);
      const pending = [...outbox.values()].flatMap((items) => [...items.values()]).sort(compareOutbox);
      return { sessions: live.map(copySession), outbox: pending.map(copyOutbox) };
    },

    async getSession(id) {
      checkOpen();
      const record = sessions.get(id);
      return record === undefined ? undefined : copySession(record);
    },

    async listSessions(query) {
      checkOpen();
      checkPageSize(query.pageSize);
      const after = decodePageToken(query.pageToken);
      const matching = [...sessions.values()]
        .filter(
          (s) =>
            (query.service === undefined || s.service === query.service) &&
            (query.state === undefined || s.state === query.state) &&
            (query.principal === undefined || s.principal === query.principal) &&
            (after === undefined || compareNewestFirst(s, after) > 0),
        )
        .sort(compareNewestFirst);
      const page = matching.slice(0, query.pageSize);
      const last = page[page.length - 1];
      return {
        sessions: page.map(copySession),
        nextPageToken:
          matching.length > page.length && last !== undefined ? encodePageToken(last) : undefined,
      };
    },

    async readJournal(sessionId, fromIndex, limit) {
      checkOpen();
      checkJournalRange(fromIndex, limit);
      return journals.get(sessionId)?.read(fromIndex, limit) ?? [];
    },

    async findBySeq(sessionId, seq) {
      checkOpen();
      return journals.get(sessionId)?.findBySeq(seq);
    },

    async findByMessageId(sessionId, messageId) {
      checkOpen();
      return journals.get(sessionId)?.findByMessageId(messageId);
    },

    async getIdempotency(principal, key) {
      checkOpen();
      const record = idempotency.get(idempotencyKey(principal, key));
      return record === undefined ? undefined : copyIdempotency(record);
    },

    async purge(endedBeforeMs, idempotencyBeforeMs) {
      checkOpen();
      let purgedSessions = 0;
      for (const s of sessions.values()) {
        if (s.state === "active" || s.endedAtMs === undefined || !(s.endedAtMs < endedBeforeMs)) continue;
        sessions.delete(s.id);
        journals.delete(s.id);
        outbox.delete(s.id);
        purgedSessions++;
      }
      let purgedIdempotency = 0;
      for (const [key, record] of idempotency) {
        if (!(record.createdAtMs < idempotencyBeforeMs)) continue;
        idempotency.delete(key);
        purgedIdempotency++;
      }
      return { sessions: purgedSessions, idempotency: purgedIdempotency };
    },

    async close() {
      if (closed) return;
      closed = true;
      sessions.clear();
      journals.clear();
      outbox.clear();
      idempotency.clear();
      liveKeys.clear();
    },

    [Symbol.asyncDispose]() {
      return this.close();
    },
  };
}

/** The S5 index key of a session while it is live; undefined when it holds none. */
function liveKeyOf(record: SessionRecord | undefined): string | undefined {
  if (record === undefined || record.state !== "active" || record.correlationKey === undefined)
    return undefined;
  // Service names cannot contain a newline, so the pair is unambiguous.
  return `${record.service}\n${record.correlationKey}`;
}

function idempotencyKey(principal: string, key: string): string {
  return JSON.stringify([principal, key]);
}

function compareOutbox(a: OutboxRecord, b: OutboxRecord): number {
  return compareText(a.sessionId, b.sessionId) || a.index - b.index || compareText(a.messageId, b.messageId);
}
