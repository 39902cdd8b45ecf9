import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import {
  ENTRY_OVERHEAD_BYTES,
  idempotencyBytes,
  keyBytes,
  outboxBytes,
  sessionBytes,
  storeFull,
} from "./memory-budget.js";
import { type MemoryJournal, packedEntryBytes } from "./memory-journal.js";
import type { IdempotencyRecord, JournalRecord, OutboxRecord, SessionRecord } from "./records.js";
import type { StoreBatch } from "./session-store.js";

/**
 * What the memory store holds (memory-store.ts creates and owns it), shared with the room
 * keeping below, which weighs batches against the budget and releases ended sessions.
 */
export interface MemoryHoldings {
  readonly sessions: Map<string, SessionRecord>;
  readonly journals: Map<string, MemoryJournal>;
  readonly outbox: Map<string, Map<string, OutboxRecord>>;
  readonly idempotency: Map<string, IdempotencyRecord>;
  /** S5: correlation key of each live session → its id, the role of SQLite's partial unique index. */
  readonly liveKeys: Map<string, string>;
  /** Ended sessions, in the order they ended: the first ones are released first for room. */
  readonly ended: Set<string>;
  /** Accounted bytes of each session's journal. */
  readonly journalBytes: Map<string, number>;
  /** Accounted bytes of everything held. */
  held: number;
}

/** The store's budget, resolved and validated (memory-store.ts). */
export interface MemoryRoomBudget {
  readonly maxMemoryBytes: number;
  /** admissionLimitOf(maxMemoryBytes): new work must leave the last eighth free. */
  readonly admissionLimit: number;
  /** Full gRPC paths of the end operations admitted in the reserve (S12). */
  readonly endOperations: ReadonlySet<string>;
}

/** What a batch adds to the holdings, and whether it is new work (MemoryRoom.weigh). */
export interface MemoryWeight {
  growth: number;
  admits: boolean;
  requests: boolean;
}

/**
 * Keeps the memory store within its budget (DESIGN §7): weighs a batch before it is
 * applied, works out the most it may leave held, and makes room by releasing the
 * sessions that ended first.
 */
export interface MemoryRoom {
  /** Drops a session that is not live, with its journal and outbox items, and gives back their bytes. */
  releaseSession(s: SessionRecord): void;
  /** Bytes held by ended sessions (for sizes(); walks them). */
  endedBytes(): number;
  /** Makes room for a batch that adds `growth` bytes, or throws STORE_FULL. */
  makeRoom(batch: StoreBatch, growth: number, limit: number): void;
  /** What the batch adds; the object is reused by the next call. */
  weigh(batch: StoreBatch, claims: ReadonlyMap<string, string | undefined>): MemoryWeight;
  /** The most the store may hold after the batch. */
  limitFor(batch: StoreBatch, growth: number, admits: boolean, requests: boolean): number;
}

export function createMemoryRoom(holdings: MemoryHoldings, budget: MemoryRoomBudget): MemoryRoom {
  const { sessions, journals, outbox, idempotency, liveKeys, ended, journalBytes } = holdings;
  const { maxMemoryBytes, admissionLimit, endOperations } = budget;

  /** Drops a session that is not live, with its journal and outbox items, and gives back their bytes. */
  const releaseSession = (s: SessionRecord): void => {
    const id = s.id;
    sessions.delete(id);
    ended.delete(id);
    holdings.held -= sessionBytes(s) + (journalBytes.get(id) ?? 0);
    journals.get(id)?.release();
    journals.delete(id);
    journalBytes.delete(id);
    for (const item of outbox.get(id)?.values() ?? []) holdings.held -= outboxBytes(item);
    outbox.delete(id);
    // An ended session holds no key, but a map entry pointing at it must not outlive it.
    const key = `${s.service}\n${s.correlationKey ?? ""}`;
    if (s.correlationKey !== undefined && liveKeys.get(key) === id) {
      liveKeys.delete(key);
      holdings.held -= keyBytes(key);
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
    if (holdings.held + growth <= limit) return;
    const touched = new Set<string>();
    for (const record of batch.sessions ?? []) touched.add(record.id);
    for (const entry of batch.entries ?? []) touched.add(entry.sessionId);
    for (const item of batch.outboxAdd ?? []) touched.add(item.sessionId);
    for (const id of ended) {
      if (holdings.held + growth <= limit) return;
      const s = sessions.get(id);
      if (s === undefined) ended.delete(id);
      else if (!touched.has(id)) releaseSession(s);
    }
    if (holdings.held + growth > limit) throw storeFull(growth, holdings.held, limit);
  };

  /** weigh()'s answer, one object reused: a commit allocates nothing to be weighed. */
  const weight: MemoryWeight = { growth: 0, admits: false, requests: false };

  /**
   * What the batch adds to `held` once applied, whether it admits new work (a session
   * the store does not hold, an idempotency key not held for an operation other than an
   * end operation) rather than finishing admitted work, and whether it holds requests (an
   * entry that answers none outside a session the batch ends): those are new work unless
   * every one is for an end operation (endRequestsOnly), which is looked at only when the
   * batch needs the reserve. A record the batch writes twice replaces its own earlier
   * copy: batches are small, so that is looked up by scanning back through the batch.
   */
  const weigh = (batch: StoreBatch, claims: ReadonlyMap<string, string | undefined>): MemoryWeight => {
    let growth = 0;
    let admits = false;
    let requests = false;
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
      if (!requests && entry.inReplyTo === "") {
        requests = !records.some((r) => r.id === entry.sessionId && r.state !== "active");
      }
    }
    const keys = batch.idempotency ?? [];
    for (let i = 0; i < keys.length; i++) {
      const record = keys[i] as IdempotencyRecord;
      const before =
        findLast(keys, i, (r) => r.principal === record.principal && r.key === record.key) ??
        idempotency.get(idempotencyKey(record.principal, record.key));
      // S12: the key of an end request is admitted with it (at most one per session it ends).
      if (before === undefined) admits ||= !endOperations.has(record.operation);
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
    weight.requests = requests;
    return weight;
  };

  /**
   * True when every request the batch holds (outside sessions it ends) is for an end
   * operation (S12): ending a session gives its memory back (the ended session is the
   * first released for room), so a client on a full store can still end its session
   * through the contract. Read from the entries' envelopes, so only for a batch that
   * would otherwise be refused.
   */
  const endRequestsOnly = (batch: StoreBatch): boolean => {
    if (endOperations.size === 0) return false;
    const records = batch.sessions ?? [];
    for (const entry of batch.entries ?? []) {
      if (entry.inReplyTo !== "") continue;
      if (records.some((r) => r.id === entry.sessionId && r.state !== "active")) continue;
      if (!endOperations.has(envelopeOperation(entry.envelope))) return false;
    }
    return true;
  };

  /**
   * The most the store may hold after the batch: the whole budget for a batch that only
   * finishes admitted work or ends sessions, seven eighths for one that admits new work.
   */
  const limitFor = (batch: StoreBatch, growth: number, admits: boolean, requests: boolean): number => {
    if (admits) return admissionLimit;
    if (!requests || holdings.held + growth <= admissionLimit) return maxMemoryBytes;
    return endRequestsOnly(batch) ? maxMemoryBytes : admissionLimit;
  };

  return { releaseSession, endedBytes, makeRoom, weigh, limitFor };
}

/** The last of list[0..before) that matches, if any. */
function findLast<T>(list: readonly T[], before: number, matches: (item: T) => boolean): T | undefined {
  for (let i = before - 1; i >= 0; i--) {
    const item = list[i] as T;
    if (matches(item)) return item;
  }
  return undefined;
}

/** sessionbridge.v1.Envelope's `operation` field number (proto/sessionbridge/v1/envelope.proto). */
const ENVELOPE_OPERATION_FIELD = 5;

/**
 * The operation (full gRPC path) an encoded envelope names, "" when it names none or
 * cannot be read: only that field is read, the others are skipped undecoded.
 */
function envelopeOperation(envelope: Uint8Array): string {
  let operation = "";
  try {
    const reader = new BinaryReader(envelope);
    while (reader.pos < reader.len) {
      const [field, wireType] = reader.tag();
      // A singular field that occurs twice takes its last occurrence (protobuf semantics).
      if (field === ENVELOPE_OPERATION_FIELD && wireType === WireType.LengthDelimited)
        operation = reader.string();
      else reader.skip(wireType, field);
    }
  } catch {
    return "";
  }
  return operation;
}

/** What a journal entry is accounted at: its packed bytes plus the fixed overhead. */
export function entryBytes(entry: JournalRecord): number {
  return ENTRY_OVERHEAD_BYTES + packedEntryBytes(entry);
}

/** The map key of an idempotency record: keys are scoped by principal (S8). */
export function idempotencyKey(principal: string, key: string): string {
  return JSON.stringify([principal, key]);
}
