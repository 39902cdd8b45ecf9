import type { IdempotencyRecord, JournalRecord, OutboxRecord } from "../store/records.js";
import type { SessionStore, StoreBatch } from "../store/session-store.js";
import { type EnvelopeFields, encodeFields } from "./envelope-codec.js";
import type { JournalFeed } from "./journal-feed.js";
import type { LiveSession } from "./live-session.js";

/** What one commit changes besides the session record, which every commit carries. */
export interface JournalChange {
  readonly entries?: readonly JournalRecord[];
  readonly idempotency?: readonly IdempotencyRecord[];
  readonly outboxAdd?: readonly OutboxRecord[];
  readonly outboxRemove?: readonly Pick<OutboxRecord, "sessionId" | "messageId">[];
}

type Writable<T> = { -readonly [K in keyof T]: T[K] };

/**
 * The change with the session's record. Built field by field rather than as
 * `{ ...change, sessions }`: on V8 11 (Node 20) a field added to a spread copy gives that
 * one object a hidden class of its own, freed only by a full collection, and every call
 * commits twice (bench/results/profile-bridged-memory.md, "Hidden classes made per call").
 */
function batchOf(session: LiveSession, change: JournalChange): StoreBatch {
  const batch: Writable<StoreBatch> = { sessions: [session.toRecord()] };
  if (change.entries !== undefined) batch.entries = change.entries;
  if (change.idempotency !== undefined) batch.idempotency = change.idempotency;
  if (change.outboxAdd !== undefined) batch.outboxAdd = change.outboxAdd;
  if (change.outboxRemove !== undefined) batch.outboxRemove = change.outboxRemove;
  return batch;
}

/**
 * Appends to session journals (S9). Indexes are assigned synchronously when an entry is
 * made, so journal order is the order in which the engine made its decisions, whatever
 * the store's latency; the store applies commits in submission order.
 */
export class Journal {
  readonly #store: SessionStore;
  readonly #feed: JournalFeed;

  constructor(store: SessionStore, feed: JournalFeed) {
    this.#store = store;
    this.#feed = feed;
  }

  /** A journal record for `session` at its next index. */
  entry(session: LiveSession, fields: Omit<EnvelopeFields, "sessionId">): JournalRecord {
    const envelope = encodeFields(fields, session.id);
    return {
      sessionId: session.id,
      index: session.nextIndex(),
      messageId: fields.messageId,
      kind: fields.kind,
      seq: fields.seq ?? 0,
      inReplyTo: fields.inReplyTo ?? "",
      recordedAtMs: fields.timeMs,
      envelope,
    };
  }

  /** Commits the change with a snapshot of the session; resolves once durable. */
  commit(session: LiveSession, change: JournalChange): Promise<void> {
    return this.#store.commit(batchOf(session, change)).then(
      () => {
        if (change.entries !== undefined) this.#feed.publish(change.entries);
      },
      (error: unknown) => {
        if (change.entries !== undefined && change.entries.length > 0) this.#relearnEnd(session);
        throw error;
      },
    );
  }

  /**
   * A commit with entries failed: its indexes are not in the journal, so every entry made
   * after it would leave a gap and the store refuses it (JOURNAL_CONFLICT). The session
   * takes its journal length from the store again; entries made meanwhile fail the same
   * way and re-learn it too, so it converges on the store's end and the session carries
   * on (S9: nothing unrecorded was acknowledged).
   */
  #relearnEnd(session: LiveSession): void {
    this.#store.getSession(session.id).then(
      (record) => {
        if (record !== undefined) session.journalLength = record.journalLength;
      },
      () => {
        // The store cannot be read either: the next commit fails and tries again.
      },
    );
  }
}
