import { setImmediate as nextTurn } from "node:timers/promises";
import { DEFAULT_MAX_MEMORY_BYTES } from "../config/config.js";
import { checkJournalAppend } from "./journal-append.js";
import { followStoredJournal } from "./journal-follow.js";
import { createJournalWakeups } from "./journal-wakeups.js";
import { admissionLimitOf, idempotencyBytes, invalidBudget } from "./memory-budget.js";
import { createChunkPool } from "./memory-chunks.js";
import { createMemoryJournal } from "./memory-journal.js";
import { createMemoryRoom, entryBytes, idempotencyKey, type MemoryHoldings } from "./memory-room.js";
import { copyIdempotency, copyOutbox, copySession } from "./record-copy.js";
import type { OutboxRecord, SessionRecord } from "./records.js";
import { compareNewestFirst, compareOldestFirst, compareText } from "./session-order.js";
import type { SessionStore } from "./session-store.js";
import { correlationTaken, storeClosed } from "./store-errors.js";
import { checkJournalRange, checkPageSize, decodePageToken, encodePageToken } from "./store-query.js";

/** What the memory store holds, to check that purged records leave nothing behind. */
export interface MemoryStoreSizes {
  readonly sessions: number;
  /** Sessions with journal entries. */
  readonly journals: number;
  /** Sessions with undelivered one-way messages. */
  readonly outboxSessions: number;
  readonly idempotency: number;
  /** Correlation keys bound to live sessions (S5). */
  readonly liveKeys: number;
  /** Journal followers registered now. */
  readonly followers: number;
  /** Bytes accounted for everything held (memory-budget.ts), at most maxMemoryBytes. */
  readonly bytes: number;
  /** The part of `bytes` held by ended sessions, given back first when room is needed. */
  readonly endedBytes: number;
}

export interface MemoryStoreOptions {
  /**
   * What the store may hold, in accounted bytes (encoded sizes plus a measured overhead per
   * record, memory-budget.ts); a positive integer, DEFAULT_MAX_MEMORY_BYTES (256 MiB) when
   * absent. A commit that would go over it is refused with RESOURCE_EXHAUSTED (STORE_FULL).
   */
  readonly maxMemoryBytes?: number;
  /**
   * Full gRPC paths of the operations that end their session and take one request
   * message (S12; endRequestOperations() in create-store.ts): a request for one gives
   * memory back once answered, so it is admitted in the reserved eighth rather than
   * refused as new work.
   */
  readonly endOperations?: ReadonlySet<string>;
}

export interface MemorySessionStore extends SessionStore {
  sizes(): MemoryStoreSizes;
}

/** Records a purge step looks at before it lets other work run (sessions or idempotency records). */
const PURGE_STEP_RECORDS = 256;

/**
 * The in-memory store, for tests and benchmarks: plain Maps, nothing durable, so a bridge
 * on it forgets everything when it stops (no S10). It answers every query exactly as the
 * SQLite store does (same order, paging, tokens, errors) and applies the same retention:
 * purge() removes ended sessions with their journals and outbox items, and old
 * idempotency records, and keeps no entry for them in any map. Tests written against it
 * hold for the durable store; the shared suite checks both.
 *
 * What it holds is bounded (DESIGN §7: no client grows memory without bound): every record
 * is accounted by its encoded size plus a fixed overhead, and a commit that would take the
 * total past maxMemoryBytes is refused whole with RESOURCE_EXHAUSTED (STORE_FULL) before
 * anything of it is recorded, so nothing of it is delivered or acknowledged (S9). A commit
 * that admits new work (a session, a request, an idempotency key) must leave the last
 * eighth free: that room records the outcomes of calls already delivered and the ends of
 * sessions, and admits requests for end operations (S12: ending a session gives memory
 * back, so a client on a full store can still end its session through the contract).
 * Ended sessions are kept for the retention period only while there is room: when a
 * commit needs it, the sessions that ended first are released at once (their records,
 * journals and outbox items, as purge() would), before anything is refused. The weighing,
 * the limits and the releasing are in memory-room.ts.
 */
export function createMemoryStore(options: MemoryStoreOptions = {}): MemorySessionStore {
  const maxMemoryBytes = options.maxMemoryBytes ?? DEFAULT_MAX_MEMORY_BYTES;
  if (!Number.isSafeInteger(maxMemoryBytes) || maxMemoryBytes <= 0) throw invalidBudget(maxMemoryBytes);
  const admissionLimit = admissionLimitOf(maxMemoryBytes);
  const endOperations: ReadonlySet<string> = options.endOperations ?? new Set();
  const holdings: MemoryHoldings = {
    sessions: new Map(),
    journals: new Map(),
    outbox: new Map(),
    idempotency: new Map(),
    liveKeys: new Map(),
    ended: new Set(),
    journalBytes: new Map(),
    held: 0,
  };
  const { sessions, journals, outbox, idempotency, liveKeys, ended, journalBytes } = holdings;
  // Dropped journals' chunks are reused by new ones (memory-chunks.ts); what waits for reuse
  // is bounded by a sixteenth of the budget (DESIGN §7).
  const chunks = createChunkPool({ maxPooledBytes: Math.floor(maxMemoryBytes / 16) });
  const room = createMemoryRoom(holdings, { maxMemoryBytes, admissionLimit, endOperations });
  const { releaseSession, endedBytes, makeRoom, weigh, limitFor } = room;
  const wakeups = createJournalWakeups();
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

  const readJournal = async (sessionId: string, fromIndex: number, limit: number) => {
    checkOpen();
    checkJournalRange(fromIndex, limit);
    return journals.get(sessionId)?.read(fromIndex, limit) ?? [];
  };

  /** Removes one ended session and everything of it; false if it is gone or live again. */
  const purgeSession = (id: string, endedBeforeMs: number): boolean => {
    const s = sessions.get(id);
    if (s === undefined || !isPurgeable(s, endedBeforeMs)) return false;
    releaseSession(s);
    return true;
  };

  return {
    kind: "memory",

    async commit(batch) {
      checkOpen();
      // Every check comes before the first change, so a rejected batch leaves nothing behind.
      const claims = planSessions(batch.sessions ?? []);
      checkJournalAppend(batch.entries ?? [], (id) => journals.get(id)?.lastIndex() ?? 0);
      const { growth, admits, requests } = weigh(batch, claims);
      makeRoom(batch, growth, limitFor(batch, growth, admits, requests));
      holdings.held += growth;
      for (const [key, id] of claims) {
        if (id === undefined) liveKeys.delete(key);
        else liveKeys.set(key, id);
      }
      for (const record of batch.sessions ?? []) {
        sessions.set(record.id, copySession(record));
        if (record.state === "active") ended.delete(record.id);
        else if (!ended.has(record.id)) ended.add(record.id);
      }
      for (const entry of batch.entries ?? []) {
        let journal = journals.get(entry.sessionId);
        if (journal === undefined) {
          journal = createMemoryJournal(entry.sessionId, chunks);
          journals.set(entry.sessionId, journal);
        }
        // Packed into the journal's own bytes: nothing of the caller's entry is kept.
        journal.add(entry);
        journalBytes.set(entry.sessionId, (journalBytes.get(entry.sessionId) ?? 0) + entryBytes(entry));
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
      if (batch.entries !== undefined) wakeups.notify(new Set(batch.entries.map((e) => e.sessionId)));
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

    async findSessionByCorrelation(service, correlationKey) {
      checkOpen();
      const id = liveKeys.get(`${service}\n${correlationKey}`);
      const record = id === undefined ? undefined : sessions.get(id);
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

    readJournal,

    followJournal: (sessionId, fromIndex, signal) =>
      followStoredJournal({ readJournal, wakeups }, sessionId, fromIndex, signal),

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
      // Bounded steps with a turn of the event loop between them, as the SQLite store
      // purges between commits: a large backlog never stalls calls.
      let purgedSessions = 0;
      const due: string[] = [];
      for (const s of sessions.values()) if (isPurgeable(s, endedBeforeMs)) due.push(s.id);
      for (let at = 0; at < due.length; at += PURGE_STEP_RECORDS) {
        for (const id of due.slice(at, at + PURGE_STEP_RECORDS)) {
          if (purgeSession(id, endedBeforeMs)) purgedSessions++;
        }
        await nextTurn();
        checkOpen();
      }
      let purgedIdempotency = 0;
      const oldKeys: string[] = [];
      for (const [key, record] of idempotency)
        if (record.createdAtMs < idempotencyBeforeMs) oldKeys.push(key);
      for (let at = 0; at < oldKeys.length; at += PURGE_STEP_RECORDS) {
        for (const key of oldKeys.slice(at, at + PURGE_STEP_RECORDS)) {
          const record = idempotency.get(key);
          if (record === undefined || !(record.createdAtMs < idempotencyBeforeMs)) continue;
          idempotency.delete(key);
          holdings.held -= idempotencyBytes(record);
          purgedIdempotency++;
        }
        await nextTurn();
        checkOpen();
      }
      return { sessions: purgedSessions, idempotency: purgedIdempotency };
    },

    sizes: () => ({
      sessions: sessions.size,
      journals: journals.size,
      outboxSessions: outbox.size,
      idempotency: idempotency.size,
      liveKeys: liveKeys.size,
      followers: wakeups.followers(),
      bytes: holdings.held,
      endedBytes: endedBytes(),
    }),

    async close() {
      if (closed) return;
      closed = true;
      wakeups.close();
      sessions.clear();
      journals.clear();
      chunks.clear();
      outbox.clear();
      idempotency.clear();
      liveKeys.clear();
      ended.clear();
      journalBytes.clear();
      holdings.held = 0;
    },

    [Symbol.asyncDispose]() {
      return this.close();
    },
  };
}

/** Not live and ended before the cut-off: due for purge (the SQLite store's condition). */
function isPurgeable(s: SessionRecord, endedBeforeMs: number): boolean {
  return s.state !== "active" && s.endedAtMs !== undefined && s.endedAtMs < endedBeforeMs;
}

/** The S5 index key of a session while it is live; undefined when it holds none. */
function liveKeyOf(record: SessionRecord | undefined): string | undefined {
  if (record === undefined || record.state !== "active" || record.correlationKey === undefined)
    return undefined;
  // Service names cannot contain a newline, so the pair is unambiguous.
  return `${record.service}\n${record.correlationKey}`;
}

function compareOutbox(a: OutboxRecord, b: OutboxRecord): number {
  return compareText(a.sessionId, b.sessionId) || a.index - b.index || compareText(a.messageId, b.messageId);
}
