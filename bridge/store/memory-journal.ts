import { copyEntry } from "./record-copy.js";
import type { JournalRecord } from "./records.js";
import type { RecordedExchange } from "./session-store.js";

/**
 * One session's journal in memory (S9), with the lookups the SQLite indexes give: by
 * index, by sb-seq (S7), by message id and by the request an outcome answers.
 */
export interface MemoryJournal {
  /** The highest index held, 0 when empty. */
  lastIndex(): number;
  /** Adds an entry; the caller has checked that it continues the journal (checkJournalAppend). */
  add(entry: JournalRecord): void;
  read(fromIndex: number, limit: number): JournalRecord[];
  findBySeq(seq: number): RecordedExchange | undefined;
  findByMessageId(messageId: string): RecordedExchange | undefined;
}

export function createMemoryJournal(): MemoryJournal {
  // Kept sorted by index; appends are contiguous, so each new entry goes at the end.
  const entries: JournalRecord[] = [];
  // Each lookup keeps the lowest index, as SQLite's ORDER BY idx LIMIT 1 does.
  const bySeq = new Map<number, JournalRecord>();
  const byMessageId = new Map<string, JournalRecord>();
  const replies = new Map<string, JournalRecord[]>();

  const exchange = (request: JournalRecord): RecordedExchange => ({
    request: copyEntry(request),
    outcomes: (request.messageId === "" ? [] : (replies.get(request.messageId) ?? [])).map(copyEntry),
  });

  return {
    lastIndex: () => entries[entries.length - 1]?.index ?? 0,

    add(entry) {
      insertSorted(entries, entry);
      if (entry.seq > 0) keepLowest(bySeq, entry.seq, entry);
      // Only requests (entries that answer none) are found by their own message id.
      if (entry.inReplyTo === "") keepLowest(byMessageId, entry.messageId, entry);
      if (entry.inReplyTo !== "") {
        const list = replies.get(entry.inReplyTo);
        if (list === undefined) replies.set(entry.inReplyTo, [entry]);
        else insertSorted(list, entry);
      }
    },

    read(fromIndex, limit) {
      const start = lowerBound(entries, fromIndex);
      return entries.slice(start, start + limit).map(copyEntry);
    },

    findBySeq(seq) {
      const request = seq > 0 ? bySeq.get(seq) : undefined;
      return request === undefined ? undefined : exchange(request);
    },

    findByMessageId(messageId) {
      const request = byMessageId.get(messageId);
      return request === undefined ? undefined : exchange(request);
    },
  };
}

function keepLowest<K>(map: Map<K, JournalRecord>, key: K, entry: JournalRecord): void {
  const held = map.get(key);
  if (held === undefined || entry.index < held.index) map.set(key, entry);
}

function insertSorted(list: JournalRecord[], entry: JournalRecord): void {
  const last = list[list.length - 1];
  if (last === undefined || last.index < entry.index) list.push(entry);
  else list.splice(lowerBound(list, entry.index), 0, entry);
}

/** Position of the first entry with index ≥ `index`. */
function lowerBound(list: readonly JournalRecord[], index: number): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((list[mid]?.index ?? Number.POSITIVE_INFINITY) < index) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
