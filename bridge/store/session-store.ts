import type {
  IdempotencyRecord,
  JournalRecord,
  OutboxRecord,
  SessionRecord,
  SessionState,
} from "./records.js";

/**
 * One atomic unit of durable change. A store applies all of it or none of it, and the
 * promise resolves only once it is durable (S9): callers answer clients after that.
 */
export interface StoreBatch {
  /** Full session records to insert or replace. */
  readonly sessions?: readonly SessionRecord[];
  /** Journal entries to append; (sessionId, index) is unique. */
  readonly entries?: readonly JournalRecord[];
  /** Idempotency records to insert or replace. */
  readonly idempotency?: readonly IdempotencyRecord[];
  /** One-way messages to add to the delivery outbox; adding one already there replaces it. */
  readonly outboxAdd?: readonly OutboxRecord[];
  /** Outbox items delivered or given up (by session id and message id); applied after outboxAdd. */
  readonly outboxRemove?: readonly Pick<OutboxRecord, "sessionId" | "messageId">[];
}

/** Sessions newest first (createdAtMs descending, then id), one page at a time. */
export interface SessionQuery {
  readonly service?: string;
  readonly state?: SessionState;
  /** Only sessions owned by this principal. */
  readonly principal?: string;
  /** A positive integer. */
  readonly pageSize: number;
  /** Opaque token from the previous page; absent or "" for the first. */
  readonly pageToken?: string;
}

export interface SessionPage {
  readonly sessions: readonly SessionRecord[];
  /** Undefined on the last page. */
  readonly nextPageToken: string | undefined;
}

/** What a bridge needs at start to carry on where it stopped (S10). */
export interface RecoveredState {
  /** Every live session, oldest first (createdAtMs, then id). */
  readonly sessions: readonly SessionRecord[];
  /** Undelivered one-way messages: by session id, then in journal order within a session. */
  readonly outbox: readonly OutboxRecord[];
}

/** The outcome recorded for a request, found by the request's message id. */
export interface RecordedExchange {
  readonly request: JournalRecord;
  /** In journal order; empty when the request was accepted but never answered (bridge stopped). */
  readonly outcomes: readonly JournalRecord[];
}

/**
 * Durable home of sessions, journals, idempotency records and the one-way outbox.
 * Implementations: memory (tests), sqlite (embedded default), jetstream (NATS, shared
 * and replicated; see jetstream-store.ts). All of them pass the
 * shared suite in test/bridge/store/session-store.suite.ts. Invalid query arguments (a
 * page token the store did not issue, a negative limit) reject with INVALID_ARGUMENT
 * (INVALID_REQUEST).
 */
export interface SessionStore {
  /** "memory", "sqlite", … for logs and errors. */
  readonly kind: string;

  /**
   * Applies a batch atomically and durably; concurrent commits resolve in the order they
   * were made. Rejects with a BridgeError: ALREADY_EXISTS (SESSION_ALREADY_EXISTS) when the
   * batch would give two live sessions of a service the same correlationKey (S5),
   * INTERNAL (STORE_FAILURE) otherwise, e.g. for a journal index already used. A rejected
   * batch leaves nothing behind.
   */
  commit(batch: StoreBatch): Promise<void>;

  /** Live sessions and undelivered one-way messages, for start-up. */
  recover(): Promise<RecoveredState>;

  getSession(id: string): Promise<SessionRecord | undefined>;
  listSessions(query: SessionQuery): Promise<SessionPage>;

  /** Entries with index ≥ fromIndex, in order, at most `limit` (an integer ≥ 0) of them. */
  readJournal(sessionId: string, fromIndex: number, limit: number): Promise<readonly JournalRecord[]>;

  /**
   * The numbered request with this sb-seq and the outcomes that answer it (S7), or
   * undefined if the session has no request with that number.
   */
  findBySeq(sessionId: string, seq: number): Promise<RecordedExchange | undefined>;

  /** The request with this message id and its outcomes. */
  findByMessageId(sessionId: string, messageId: string): Promise<RecordedExchange | undefined>;

  getIdempotency(principal: string, key: string): Promise<IdempotencyRecord | undefined>;

  /**
   * Deletes sessions that are not live and ended before `endedBeforeMs` (with their
   * journals and outbox items) and
   * idempotency records created before `idempotencyBeforeMs`. Returns how many of each.
   */
  purge(
    endedBeforeMs: number,
    idempotencyBeforeMs: number,
  ): Promise<{ sessions: number; idempotency: number }>;

  /**
   * Finishes pending commits and releases resources. Idempotent. Every call made after it
   * rejects with UNAVAILABLE (SHUTTING_DOWN).
   */
  close(): Promise<void>;

  /** Same as close(), for `await using`. */
  [Symbol.asyncDispose](): Promise<void>;
}
