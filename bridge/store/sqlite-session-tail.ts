import type { SessionRow, StoredSessionRow } from "./sqlite-rows.js";

/**
 * The hot fields of a session (journal length, next sb-seq, last activity) change with
 * every journal entry, but the journal already says them: its last index, its highest
 * sb-seq and the time of its last entry. Writing them to the session row on every commit
 * would add a page of the sessions table to the WAL of every commit (S9 makes each call
 * two commits), so the row is written only when something else changes (state, end,
 * correlation) or when the journal cannot tell the value, and reads take the rest from the
 * journal's tail. `written_at_idx` is the journal's last index when the row was written:
 * up to it, the row says everything; entries after it advance the hot fields.
 */

/** What reads add to a session row: the tail of its journal (NULL when the journal is empty). */
export interface JournalTail {
  tail_idx: number | null;
  tail_seq: number | null;
  tail_at: number | null;
}

/** The journal's key of the session in the enclosing query's `sessions` row (sqlite-schema.ts). */
const SESSION_KEY = "(SELECT key FROM session_keys WHERE id = sessions.id)";

/**
 * The tail columns of the session in the enclosing query's `sessions` row. Each is one seek
 * on an index of the journal (its primary key, journal_seq), whatever the journal's length.
 */
export const TAIL_COLUMNS = `
  (SELECT max(idx) FROM journal WHERE session_key = ${SESSION_KEY}) AS tail_idx,
  (SELECT max(seq) FROM journal WHERE session_key = ${SESSION_KEY} AND seq > 0) AS tail_seq,
  (SELECT recorded_at_ms FROM journal WHERE session_key = ${SESSION_KEY} ORDER BY idx DESC LIMIT 1) AS tail_at`;

/** The same columns for a session whose journal key the query takes as `@key` (NULL: none yet). */
export const TAIL_COLUMNS_BY_KEY = `
  (SELECT max(idx) FROM journal WHERE session_key = @key) AS tail_idx,
  (SELECT max(seq) FROM journal WHERE session_key = @key AND seq > 0) AS tail_seq,
  (SELECT recorded_at_ms FROM journal WHERE session_key = @key ORDER BY idx DESC LIMIT 1) AS tail_at`;

/** The session row with its hot fields brought up to its journal's tail. */
export function withJournalTail(row: StoredSessionRow & JournalTail): StoredSessionRow {
  const { tail_idx, tail_seq, tail_at, ...stored } = row;
  if (tail_idx === null || tail_idx <= stored.written_at_idx) return stored;
  return {
    ...stored,
    journal_length: Math.max(stored.journal_length, tail_idx),
    // S7: numbered messages count 1, 2, 3, …; the highest journaled number was taken.
    next_seq: Math.max(stored.next_seq, (tail_seq ?? 0) + 1),
    last_active_at_ms: Math.max(stored.last_active_at_ms, tail_at ?? 0),
  };
}

/**
 * Whether a session record says nothing the stored row and its journal do not: the same
 * cold fields, and hot fields a read derives exactly, except that a read may report a
 * later activity time than the record (the time of the session's last entry, which is
 * activity too). Then the commit need not touch the row.
 */
export function derivable(record: SessionRow, current: SessionRow): boolean {
  return (
    record.journal_length === current.journal_length &&
    record.next_seq === current.next_seq &&
    record.last_active_at_ms <= current.last_active_at_ms &&
    sameColdFields(record, current)
  );
}

/** Everything but the hot fields (and the row's own bookkeeping) is equal. */
export function sameColdFields(a: SessionRow, b: SessionRow): boolean {
  return (
    a.id === b.id &&
    a.service === b.service &&
    a.state === b.state &&
    a.end_reason === b.end_reason &&
    a.correlation_set === b.correlation_set &&
    a.correlation === b.correlation &&
    a.correlation_key === b.correlation_key &&
    a.principal === b.principal &&
    a.created_at_ms === b.created_at_ms &&
    a.ended_at_ms === b.ended_at_ms &&
    a.idle_timeout_ms === b.idle_timeout_ms &&
    a.max_lifetime_ms === b.max_lifetime_ms
  );
}
