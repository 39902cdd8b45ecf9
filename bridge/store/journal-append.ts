import type { JournalRecord } from "./records.js";
import { journalConflict } from "./store-errors.js";

/**
 * The append rule every store enforces (S9): within a batch, the entries of a session, in
 * batch order, continue that session's stored journal with no gap and no repeat: the
 * first takes the stored last index + 1 (1 for an empty journal), the next one more, and
 * so on. Entries of different sessions may interleave. An append that breaks the rule is
 * refused whole with ABORTED (JOURNAL_CONFLICT), never merged or overwritten, so a
 * writer that lost a race learns it instead of corrupting the journal.
 *
 * `lastIndex` answers the stored last index of a session (0 when it has none), as seen by
 * the transaction the batch is applied in.
 */
export function checkJournalAppend(
  entries: readonly JournalRecord[],
  lastIndex: (sessionId: string) => number,
): void {
  const expected = new Map<string, number>();
  for (const entry of entries) {
    const next = expected.get(entry.sessionId) ?? lastIndex(entry.sessionId) + 1;
    if (entry.index !== next) throw journalConflict(entry.sessionId, next, entry.index);
    expected.set(entry.sessionId, next + 1);
  }
}
