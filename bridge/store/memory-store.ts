import { setImmediate as nextTurn } from "node:timers/promises";
import { DEFAULT_MAX_MEMORY_BYTES } from "../config/config.js";
import { checkJournalAppend } from "./journal-append.js";
import { followStoredJournal } from "./journal-follow.js";
import { createJournalWakeups } from "./journal-wakeups.js";
import {
  admissionLimitOf,
  ENTRY_OVERHEAD_BYTES,
  idempotencyBytes,
  invalidBudget,
  keyBytes,
  outboxBytes,
  sessionBytes,
  storeFull,
} from "./memory-budget.js";
import { createChunkPool } from "./memory-chunks.js";
import { createMemoryJournal, type MemoryJournal, packedEntryBytes } from "./memory-journal.js";
import { copyIdempotency, copyOutbox, copySession } from "./record-copy.js";
import type { IdempotencyRecord, JournalRecord, OutboxRecord, SessionRecord } from "./records.js";
import { compareNewestFirst, compareOldestFirst, compareText } from "./session-order.js";
import type { SessionStore, StoreBatch } from "./session-store.js";
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
 * sessions. Ended sessions are kept for the retention period only while there is room:
 * when a commit needs it, the sessions that ended first are released at once (their
 * records, journals and outbox items, as purge() would), before anything is refused.
 */
export function createMemoryStore(options: MemoryStoreOptions = {}): MemorySessionStore {
  const maxMemoryBytes = options.maxMemoryBytes ?? DEFAULT_MAX_MEMORY_BYTES;
  if (!Number.isSafeInteger(maxMemoryBytes) || maxMemoryBytes <= 0) throw invalidBudget(maxMemoryBytes);
  const admissionLimit = admissionLimitOf(maxMemoryBytes);
  const sessions = new Map<string, SessionRecord>();
  const journals = new Map<string, MemoryJournal>();
  // Dropped journals' chunks are reused by new ones (memory-chunks.ts); what waits for reuse
  // is bounded by a sixteenth of the budget (DESIGN §7).
  const chunks = createChunkPool({ maxPooledBytes: Math.floor(maxMemoryBytes / 16) });
  const outbox = new Map<string, Map<string, OutboxRecord>>();
  const idempotency = new Map<string, IdempotencyRecord>();
  // S5: correlation key of each live session → its id, the role of SQLite's partial unique index.
  const liveKeys = new Map<string, string>();
  const wakeups = createJournalWakeups();
  let closed = false;
  /** Accounted bytes of everything held. */
  let held = 0;
  /** Ended sessions, in the order they ended: the first ones are released first for room. */
  const ended = new Set<string>();
  /** Accounted bytes of each session's journal. */
  const journalBytes = new Map<string, number>();

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

  /** Drops a session that is not live, with its journal and outbox items, and gives back their bytes. */
  const releaseSession = (s: SessionRecord): void => {
    const id = s.id;
    sessions.delete(id);
    ended.delete(id);
    held -= sessionBytes(s) + (journalBytes.get(id) ?? 0);
    journals.get(id)?.release();
    journals.delete(id);
    journalBytes.delete(id);
    for (const item of outbox.get(id)?.values() ?? []) held -= outboxBytes(item);
    outbox.delete(id);
    // An ended session holds no key, but a map entry pointing at it must not outlive it.
    const key = `${s.service}\n${s.correlationKey ?? ""}`;
    if (s.correlationKey !== undefined && liveKeys.get(key) === id) {
      liveKeys.delete(key);
      held -= keyBytes(key);
    }
  };

  /** Bytes held by ended sessions (for sizes(); walks them). */
  const endedBytes = (): number => {
    let bytes = 0;
    for (const id of ended) {
      const s = sessions.get(id);
      if (s !== undefined) bytes += sessionBytes(s) + (journalBytes.get(id) ?? 0);
      for (const item of outbox.get(id)?.values() ?? []) bytes += outboxBytes(item);
    }
    return bytes;
  };

  /**
   * Makes room for a batch that adds `growth` bytes, or throws STORE_FULL: ended sessions
   * go first, in the order they ended, except those the batch itself writes.
   */
  const makeRoom = (batch: StoreBatch, growth: number, limit: number): void => {
    if (held + growth <= limit) return;
    const touched = new Set<string>();
    for (const record of batch.sessions ?? []) touched.add(record.id);
    for (const entry of batch.entries ?? []) touched.add(entry.sessionId);
    for (const item of batch.outboxAdd ?? []) touched.add(item.sessionId);
    for (const id of ended) {
      if (held + growth <= limit) return;
      const s = sessions.get(id);
      if (s === undefined) ended.delete(id);
      else if (!touched.has(id)) releaseSession(s);
    }
    if (held + growth > limit) throw storeFull(growth, held, limit);
  };

  /** weigh()'s answer, one object reused: a commit allocates nothing to be weighed. */
  const weight = { growth: 0, admits: false };

  /**
   * What the batch adds to `held` once applied, and whether it admits new work (a session
   * the store does not hold, a request or any entry that answers none outside a session
   * the batch ends, an idempotency key not held) rather than finishing admitted work. A
   * record the batch writes twice replaces its own earlier copy: batches are small, so
   * that is looked up by scanning back through the batch.
   */
  const weigh = (batch: StoreBatch, claims: ReadonlyMap<string, string | undefined>): typeof weight => {
    let growth = 0;
    let admits = false;
    const records = batch.sessions ?? [];
    for (let i = 0; i < records.length; i++) {
      const record = records[i] as SessionRecord;
      const before = findLast(records, i, (r) => r.id === record.id) ?? sessions.get(record.id);
      if (before === undefined) admits = true;
      else growth -= sessionBytes(before);
      growth += sessionBytes(record);
    }
    for (const [key, id] of claims) {
      const holds = liveKeys.has(key);
      if (id === undefined && holds) growth -= keyBytes(key);
      else if (id !== undefined && !holds) growth += keyBytes(key);
    }
    for (const entry of batch.entries ?? []) {
      growth += entryBytes(entry);
      if (!admits && entry.inReplyTo === "") {
        admits = !records.some((r) => r.id === entry.sessionId && r.state !== "active");
      }
    }
    const keys = batch.idempotency ?? [];
    for (let i = 0; i < keys.length; i++) {
      const record = keys[i] as IdempotencyRecord;
      const before =
        findLast(keys, i, (r) => r.principal === record.principal && r.key === record.key) ??
        idempotency.get(idempotencyKey(record.principal, record.key));
      if (before === undefined) admits = true;
      else growth -= idempotencyBytes(before);
      growth += idempotencyBytes(record);
    }
    const adds = batch.outboxAdd ?? [];
    const removes = batch.outboxRemove ?? [];
    for (let i = 0; i < adds.length; i++) {
      const item = adds[i] as OutboxRecord;
      const same = (o: OutboxRecord) => o.sessionId === item.sessionId && o.messageId === item.messageId;
      const before = findLast(adds, i, same) ?? outbox.get(item.sessionId)?.get(item.messageId);
      if (before !== undefined) growth -= outboxBytes(before);
      growth += outboxBytes(item);
    }
    for (let i = 0; i < removes.length; i++) {
      const item = removes[i] as Pick<OutboxRecord, "sessionId" | "messageId">;
      const same = (o: Pick<OutboxRecord, "sessionId" | "messageId">) =>
        o.sessionId === item.sessionId && o.messageId === item.messageId;
      // Removes apply after adds: an item removed earlier in the batch is gone already.
      if (findLast(removes, i, same) !== undefined) continue;
      const before = findLast(adds, adds.length, same) ?? outbox.get(item.sessionId)?.get(item.messageId);
      if (before !== undefined) growth -= outboxBytes(before);
    }
    weight.growth = growth;
    weight.admits = admits;
    return weight;
  };

  return {
    kind: "memory",

    async commit(batch) {
      checkOpen();
      // Every check comes before the first change, so a rejected batch leaves nothing behind.
      const claims = planSessions(batch.sessions ?? []);
      checkJournalAppend(batch.entries ?? [], (id) => journals.get(id)?.lastIndex() ?? 0);
      const { growth, admits } = weigh(batch, claims);
      makeRoom(batch, growth, admits ? admissionLimit : maxMemoryBytes);
      held += growth;
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
          held -= idempotencyBytes(record);
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
      bytes: held,
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
      held = 0;
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

/** The last of list[0..before) that matches, if any. */
function findLast<T>(list: readonly T[], before: number, matches: (item: T) => boolean): T | undefined {
  for (let i = before - 1; i >= 0; i--) {
    const item = list[i] as T;
    if (matches(item)) return item;
  }
  return undefined;
}

function entryBytes(entry: JournalRecord): number {
  return ENTRY_OVERHEAD_BYTES + packedEntryBytes(entry);
}

function idempotencyKey(principal: string, key: string): string {
  return JSON.stringify([principal, key]);
}

function compareOutbox(a: OutboxRecord, b: OutboxRecord): number {
  return compareText(a.sessionId, b.sessionId) || a.index - b.index || compareText(a.messageId, b.messageId);
}
