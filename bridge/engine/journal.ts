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
    const batch: StoreBatch = { ...change, sessions: [session.toRecord()] };
    return this.#store.commit(batch).then(
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
