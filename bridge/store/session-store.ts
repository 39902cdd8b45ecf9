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
  /** One-way messages to add to the delivery outbox. */
  readonly outboxAdd?: readonly OutboxRecord[];
  /** Outbox items delivered or given up (by session id and message id). */
  readonly outboxRemove?: readonly Pick<OutboxRecord, "sessionId" | "messageId">[];
}

export interface SessionQuery {
  readonly service?: string;
  readonly state?: SessionState;
  /** Only sessions owned by this principal. */
  readonly principal?: string;
  readonly pageSize: number;
  /** Opaque token from the previous page. */
  readonly pageToken?: string;
}

export interface SessionPage {
  readonly sessions: readonly SessionRecord[];
  /** Undefined on the last page. */
  readonly nextPageToken: string | undefined;
}

/** What a bridge needs at start to carry on where it stopped (S10). */
export interface RecoveredState {
  /** Every live session. */
  readonly sessions: readonly SessionRecord[];
  /** Undelivered one-way messages, in journal order per session. */
  readonly outbox: readonly OutboxRecord[];
}

/** The outcome recorded for a request, found by the request's message id. */
export interface RecordedExchange {
  readonly request: JournalRecord;
  /** Undefined when the request was accepted but never answered (bridge stopped). */
  readonly outcomes: readonly JournalRecord[];
}

/**
 * Durable home of sessions, journals, idempotency records and the one-way outbox.
 * Implementations: memory (tests), sqlite (embedded default). All of them pass the
 * shared suite in test/bridge/store/session-store.suite.ts.
 */
export interface SessionStore {
  /** "memory", "sqlite", … for logs and errors. */
  readonly kind: string;

  /** Applies a batch atomically and durably. Rejects with a BridgeError (INTERNAL, STORE_FAILURE). */
  commit(batch: StoreBatch): Promise<void>;

  /** Live sessions and undelivered one-way messages, for start-up. */
  recover(): Promise<RecoveredState>;

  getSession(id: string): Promise<SessionRecord | undefined>;
  listSessions(query: SessionQuery): Promise<SessionPage>;

  /** Entries with index ≥ fromIndex, in order, at most `limit` of them. */
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
   * Deletes sessions that ended before `endedBeforeMs` (with their journals) and
   * idempotency records created before `idempotencyBeforeMs`. Returns how many of each.
   */
  purge(
    endedBeforeMs: number,
    idempotencyBeforeMs: number,
  ): Promise<{ sessions: number; idempotency: number }>;

  /** Finishes pending commits and releases resources. Idempotent. */
  close(): Promise<void>;
}
