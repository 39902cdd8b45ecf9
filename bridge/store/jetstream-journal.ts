import {
  type ConsumerMessages,
  DeliverPolicy,
  type JetStreamClient,
  type JetStreamManager,
} from "@nats-io/jetstream";
import { decodeJson, encodeJson, entryFromJson, entryToJson, token } from "./jetstream-codec.js";
import type { JournalRecord } from "./records.js";
import type { RecordedExchange } from "./session-store.js";

/**
 * Session journals (S9) in one stream, one subject per session
 * (`<prefix>.journal.<session token>`). An append is guarded by the subject's last
 * sequence (Nats-Expected-Last-Subject-Sequence), so a second writer that appended in the
 * meantime makes it fail instead of interleaving, and carries Nats-Msg-Id
 * `<session>.<index>`, so a retried publish is stored once.
 */
export interface JetStreamJournals {
  /**
   * Indexes the session's journal holds now (for the batch checks before the commit
   * point): the cached set, read again when the subject's last sequence moved.
   */
  indexes(sessionId: string): Promise<ReadonlySet<number>>;
  /**
   * The session's last stored index (0 for an empty journal), as indexes() sees it: what
   * the next append must continue (S9, checkJournalAppend).
   */
  lastIndex(sessionId: string): Promise<number>;
  /**
   * Appends entries of one session; an index already holding the same message is skipped
   * (a replayed batch), one holding another message rejects (another writer won it).
   */
  append(sessionId: string, entries: readonly JournalRecord[]): Promise<void>;
  read(sessionId: string, fromIndex: number, limit: number): Promise<JournalRecord[]>;
  findBy(sessionId: string, match: (entry: JournalRecord) => boolean): Promise<RecordedExchange | undefined>;
  remove(sessionId: string): Promise<void>;
  /**
   * Calls `onStored` for the subject's last stored message, then for each one stored
   * after it, whoever published it (S9: followers see other stores' commits): an ordered
   * consumer that delivers headers only and holds at most a few messages. Returns stop().
   * A consumer that cannot be made is given up quietly: followers still wake on this
   * store's own commits.
   */
  watchStored(sessionId: string, onStored: () => void): () => void;
  /** Forgets what is cached about a session, so the next use reads the stream again. */
  forget(sessionId: string): void;
}

interface Head {
  /** Stream sequence of the subject's last message; 0 when it has none. */
  lastSeq: number;
  /** Message id at each index. */
  indexes: Map<number, string>;
}

/** How many sessions' heads are kept; older ones are read from the stream again when used. */
const MAX_CACHED_HEADS = 1024;

/** How long a journal read waits for its next message before it starts over. */
const SCAN_STALL_MS = 10_000;
/** Reads of one journal before it fails. */
const SCAN_ATTEMPTS = 3;

export function createJetStreamJournals(
  js: JetStreamClient,
  jsm: JetStreamManager,
  stream: string,
  prefix: string,
): JetStreamJournals {
  const heads = new Map<string, Head>();
  const subjectOf = (sessionId: string): string => `${prefix}.journal.${token(sessionId)}`;

  /** Visits every entry of a session in stream order with an ordered consumer (bounded batches). */
  const scan = async (
    sessionId: string,
    visit: (entry: JournalRecord, seq: number) => void,
  ): Promise<number> => {
    const subject = subjectOf(sessionId);
    const last = await jsm.streams.getMessage(stream, { last_by_subj: subject });
    if (last === null) return 0;
    // A consumer whose server went away may never deliver again: a read that stalls starts
    // over with a new consumer, and after SCAN_ATTEMPTS fails (the caller retries) instead
    // of holding the session's turn for ever. Entries are visited only from a whole read.
    for (let attempt = 1; ; attempt++) {
      const read = await readOnce(subject, last.seq);
      if (read !== undefined) {
        for (const { entry, seq } of read) visit(entry, seq);
        return last.seq;
      }
      if (attempt >= SCAN_ATTEMPTS) throw new Error(`journal read of session ${sessionId} stalled; retry`);
    }
  };

  /** Every entry of the subject up to `lastSeq`, or undefined when the consumer stalled. */
  const readOnce = async (
    subject: string,
    lastSeq: number,
  ): Promise<{ entry: JournalRecord; seq: number }[] | undefined> => {
    const consumer = await js.consumers.get(stream, { filter_subjects: [subject] });
    const messages = await consumer.consume({ max_messages: 256 });
    const out: { entry: JournalRecord; seq: number }[] = [];
    let timer: NodeJS.Timeout | undefined;
    const arm = (): void => {
      if (timer !== undefined) clearTimeout(timer);
      timer = setTimeout(() => messages.stop(), SCAN_STALL_MS);
    };
    arm();
    try {
      for await (const m of messages) {
        arm();
        out.push({ entry: entryFromJson(decodeJson(m.data)), seq: m.seq });
        // Never answer from part of a journal (S7, S9): done only once the last is read.
        if (m.seq >= lastSeq) return out;
      }
      return undefined;
    } finally {
      if (timer !== undefined) clearTimeout(timer);
      messages.stop();
    }
  };

  const headOf = async (sessionId: string): Promise<Head> => {
    const cached = heads.get(sessionId);
    if (cached !== undefined) {
      // Refresh its place: the map iterates oldest first, so eviction drops the least recent.
      heads.delete(sessionId);
      heads.set(sessionId, cached);
      return cached;
    }
    const indexes = new Map<number, string>();
    const lastSeq = await scan(sessionId, (entry) => {
      indexes.set(entry.index, entry.messageId);
    });
    const head = { lastSeq, indexes };
    heads.set(sessionId, head);
    for (const key of heads.keys()) {
      if (heads.size <= MAX_CACHED_HEADS) break;
      heads.delete(key);
    }
    return head;
  };

  const readAll = async (sessionId: string): Promise<JournalRecord[]> => {
    const entries: JournalRecord[] = [];
    await scan(sessionId, (entry) => {
      entries.push(entry);
    });
    return entries.sort((a, b) => a.index - b.index);
  };

  return {
    async indexes(sessionId) {
      const cached = heads.get(sessionId);
      if (cached !== undefined) {
        // Another writer may have appended since: one cheap read of the subject's last message.
        const last = await jsm.streams.getMessage(stream, { last_by_subj: subjectOf(sessionId) });
        if ((last?.seq ?? 0) !== cached.lastSeq) heads.delete(sessionId);
      }
      return new Set((await headOf(sessionId)).indexes.keys());
    },

    async lastIndex(sessionId) {
      let last = 0;
      for (const index of await this.indexes(sessionId)) if (index > last) last = index;
      return last;
    },

    async append(sessionId, entries) {
      const head = await headOf(sessionId);
      try {
        for (const entry of entries) {
          const held = head.indexes.get(entry.index);
          if (held === entry.messageId) continue;
          if (held !== undefined) {
            throw new Error(`journal entry ${entry.index} of session ${sessionId} holds another message`);
          }
          const ack = await js.publish(subjectOf(sessionId), encodeJson(entryToJson(entry)), {
            msgID: `${token(sessionId)}.${entry.index}`,
            expect: { lastSubjectSequence: head.lastSeq },
          });
          if (ack.duplicate) throw new Error(`journal entry ${entry.index} was already published`);
          head.lastSeq = ack.seq;
          head.indexes.set(entry.index, entry.messageId);
        }
      } catch (error) {
        // The head may no longer match the stream: read it again next time.
        heads.delete(sessionId);
        throw error;
      }
    },

    async read(sessionId, fromIndex, limit) {
      if (limit === 0) return [];
      const all = await readAll(sessionId);
      return all.filter((e) => e.index >= fromIndex).slice(0, limit);
    },

    async findBy(sessionId, match) {
      const all = await readAll(sessionId);
      const request = all.find(match);
      if (request === undefined) return undefined;
      const outcomes = request.messageId === "" ? [] : all.filter((e) => e.inReplyTo === request.messageId);
      return { request, outcomes };
    },

    async remove(sessionId) {
      await jsm.streams.purge(stream, { filter: subjectOf(sessionId) });
      heads.delete(sessionId);
    },

    watchStored(sessionId, onStored) {
      let stopped = false;
      let messages: ConsumerMessages | undefined;
      void (async () => {
        try {
          // The last message, not only new ones: an entry stored between the follower's
          // read and this consumer's start still wakes it (it re-reads by index).
          const consumer = await js.consumers.get(stream, {
            filter_subjects: [subjectOf(sessionId)],
            deliver_policy: DeliverPolicy.LastPerSubject,
            headers_only: true,
          });
          if (stopped) return;
          messages = await consumer.consume({ max_messages: 8 });
          if (stopped) {
            messages.stop();
            return;
          }
          for await (const _ of messages) onStored();
        } catch {
          // Closed connection or a consumer the server refused: local wake-ups remain.
        }
      })();
      return () => {
        stopped = true;
        messages?.stop();
      };
    },

    forget(sessionId) {
      heads.delete(sessionId);
    },
  };
}
