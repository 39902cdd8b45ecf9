import type { JournalWakeups } from "./journal-wakeups.js";
import type { JournalRecord } from "./records.js";
import type { JournalFollower } from "./session-store.js";
import { checkJournalRange } from "./store-query.js";

/** Entries a follower reads from the store at a time: the most it ever holds. */
export const FOLLOW_PAGE_SIZE = 256;

/** What a follower needs from its store. */
export interface FollowSource {
  readJournal(sessionId: string, fromIndex: number, limit: number): Promise<readonly JournalRecord[]>;
  readonly wakeups: JournalWakeups;
}

/**
 * followJournal() for any store that can read its journal by index and wake followers
 * after durable commits (S9). The follower keeps only its next index and one page: when
 * it has read everything it waits to be woken, then reads the store again from that
 * index. Because appends are contiguous (checkJournalAppend), reading by index yields
 * every entry once, in order, however slowly the consumer reads.
 */
export function followStoredJournal(
  source: FollowSource,
  sessionId: string,
  fromIndex: number,
  signal: AbortSignal,
): JournalFollower {
  let held = 0;

  async function* run(): AsyncGenerator<JournalRecord, void, undefined> {
    checkJournalRange(fromIndex, 0);
    if (signal.aborted) return;
    const watch = source.wakeups.watch(sessionId);
    try {
      let next = Math.max(fromIndex, 1);
      while (!signal.aborted) {
        watch.reset();
        const page = await source.readJournal(sessionId, next, FOLLOW_PAGE_SIZE);
        if (page.length === 0) {
          await watch.wait(signal);
          continue;
        }
        held = page.length;
        for (const entry of page) {
          if (signal.aborted) return;
          held--;
          next = entry.index + 1;
          yield entry;
        }
      }
    } finally {
      held = 0;
      watch.release();
    }
  }

  const entries = run();
  return {
    get heldEntries() {
      return held;
    },
    [Symbol.asyncIterator]: () => entries,
  };
}
