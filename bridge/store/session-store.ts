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
  /**
   * Journal entries to append (S9). The entries of a session, in this order, must continue
   * its stored journal: the first takes the stored last index + 1 (1 for a new journal),
   * each next one 1 more. Anything else (a gap, a repeat, an index another writer took
   * first) refuses the whole batch with ABORTED (JOURNAL_CONFLICT); see commit(). A writer
   * whose commit failed must learn the journal's end again (the error's `expected_index`,
   * or readJournal) before it appends to that session: commits it had already sent after
   * the failed one no longer continue the journal and are refused too.
   */
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
 * A live view of one session's journal (S9), from followJournal(). Iterate it once.
 */
export interface JournalFollower extends AsyncIterable<JournalRecord> {
  /**
   * Entries the follower has read from the store and not yet handed out: at most one read
   * page, however many entries are committed while the consumer is slow. A follower keeps
   * its place by index and re-reads the store; it never queues entries.
   */
  readonly heldEntries: number;
}

/**
 * Durable home of sessions, journals, idempotency records and the one-way outbox.
 * Implementations: memory (tests and benchmarks), sqlite (embedded default), jetstream
 * (NATS, shared by several bridge replicas and replicated; see jetstream-store.ts). All of them
 * pass the shared suite in test/bridge/store/session-store.suite.ts. Invalid query
 * arguments (a page token the store did not issue, a negative limit) reject with
 * INVALID_ARGUMENT (INVALID_REQUEST).
 *
 * What lets several engines share one store:
 * - Appends are checked against the expected index (see StoreBatch.entries): two writers
 *   appending to the same session cannot both succeed; the loser gets JOURNAL_CONFLICT.
 * - Sessions are loaded when first touched: an engine that does not hold a session finds
 *   it with getSession() (by id, S1) or findSessionByCorrelation() (by correlation, S5),
 *   and the answer is the same from any store opened on the same data.
 * - The journal is a stream: followJournal() follows a session's entries as they become
 *   durable, whoever committed them through this store.
 */
export interface SessionStore {
  /** "memory", "sqlite", … for logs and errors. */
  readonly kind: string;

  /**
   * Applies a batch atomically and durably; concurrent commits resolve in the order they
   * were made. Rejects with a BridgeError: ALREADY_EXISTS (SESSION_ALREADY_EXISTS) when the
   * batch would give two live sessions of a service the same correlationKey (S5), ABORTED
   * (JOURNAL_CONFLICT, metadata `expected_index`) when its entries do not continue their
   * sessions' journals (S9), INTERNAL (STORE_FAILURE) otherwise. A rejected batch leaves
   * nothing behind.
   */
  commit(batch: StoreBatch): Promise<void>;

  /** Live sessions and undelivered one-way messages, for start-up. */
  recover(): Promise<RecoveredState>;

  /** The session with this id, live or ended, as last committed (S1). */
  getSession(id: string): Promise<SessionRecord | undefined>;

  /**
   * The LIVE session of `service` bound to `correlationKey` (S5: at most one), or
   * undefined. Ended sessions no longer hold their key. An index lookup: its cost does not
   * grow with the number of sessions.
   */
  findSessionByCorrelation(service: string, correlationKey: string): Promise<SessionRecord | undefined>;

  listSessions(query: SessionQuery): Promise<SessionPage>;

  /** Entries with index ≥ fromIndex, in order, at most `limit` (an integer ≥ 0) of them. */
  readJournal(sessionId: string, fromIndex: number, limit: number): Promise<readonly JournalRecord[]>;

  /**
   * Follows a session's journal (S9: readable as a live stream): yields the stored entries
   * with index ≥ fromIndex in order, then each new entry once the commit that carries it
   * is durable, with no gap and no repeat, until `signal` aborts; then the iteration ends
   * quietly (an already aborted signal yields nothing). Entries committed through another
   * store instance are seen when this one is next woken. It never queues entries for a
   * slow consumer: it re-reads the store by index (see JournalFollower.heldEntries). A
   * fractional fromIndex rejects the first next() with INVALID_ARGUMENT; close() makes a
   * waiting follower reject with UNAVAILABLE (SHUTTING_DOWN).
   */
  followJournal(sessionId: string, fromIndex: number, signal: AbortSignal): JournalFollower;

  /**
   * The numbered request with this sb-seq and the outcomes that answer it (S7), or
   * undefined if the session has no request with that number.
   */
  findBySeq(sessionId: string, seq: number): Promise<RecordedExchange | undefined>;

  /**
   * The request with this message id (an entry that answers none: an outcome is not found
   * by its own id) and its outcomes.
   */
  findByMessageId(sessionId: string, messageId: string): Promise<RecordedExchange | undefined>;

  getIdempotency(principal: string, key: string): Promise<IdempotencyRecord | undefined>;

  /**
   * Deletes sessions that are not live and ended before `endedBeforeMs` (with their
   * journals and outbox items) and idempotency records created before
   * `idempotencyBeforeMs`; resolves with how many of each once all are gone. It works in
   * small bounded steps between commits, so a large backlog never holds commits back for
   * long; a session disappears only after its journal is gone.
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
