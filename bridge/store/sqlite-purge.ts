import type BetterSqlite3 from "better-sqlite3";
import type { PurgeCounts } from "./sqlite-protocol.js";

/** What a purge step did: rows deleted, and the totals once nothing due is left. */
export interface PurgeStep {
  readonly deletedRows: number;
  readonly done: PurgeCounts | undefined;
}

/** One purge() in progress. */
export interface PurgeJob {
  /**
   * Deletes at most `rows` more rows (journal, outbox, session and idempotency rows
   * together; a few more when a session's outbox ends it) inside the transaction the writer has open for a group of commits, in a savepoint
   * of its own: the group's fsync makes it durable, and it costs no fsync of its own.
   * Throws what SQLite throws, after rolling back to the savepoint.
   */
  stepWithin(rows: number): PurgeStep;
  /** The same in a transaction of its own, for when no commits come. */
  step(rows: number): PurgeStep;
}

export interface Purger {
  start(endedBeforeMs: number, idempotencyBeforeMs: number): PurgeJob;
}

/**
 * Retention in small steps (S8 records, ended sessions and their journals). One
 * transaction deleting a large backlog would hold the write lock, and every commit behind
 * it, for seconds; a step takes as many rows as fit in a few milliseconds (the writer
 * sizes it, sqlite-purge-pace.ts), and the writer takes queued commits between steps. A session's journal goes first, oldest entries first,
 * and its session row last, so a purge cut short (crash, close) leaves the session row
 * to find and finish next time, never orphaned journal rows.
 */
export function createPurger(db: BetterSqlite3.Database, synchronous: "full" | "normal"): Purger {
  const begin = db.prepare("BEGIN IMMEDIATE");
  const commit = db.prepare("COMMIT");
  const rollback = db.prepare("ROLLBACK");
  const savepoint = db.prepare("SAVEPOINT purge");
  const release = db.prepare("RELEASE purge");
  const rollbackTo = db.prepare("ROLLBACK TO purge");
  // The literal `state <> 'active'` lets SQLite use the partial index sessions_ended.
  const nextDue = db
    .prepare<[number], string>(
      "SELECT id FROM sessions WHERE state <> 'active' AND ended_at_ms < ? ORDER BY ended_at_ms LIMIT 1",
    )
    .pluck();
  const keyById = db.prepare<[string], number>("SELECT key FROM session_keys WHERE id = ?").pluck();
  // The index of the entry that uses up the budget, if the journal has that many left.
  const journalCut = db
    .prepare<[number, number], number>(
      "SELECT idx FROM journal WHERE session_key = ? ORDER BY idx LIMIT 1 OFFSET ?",
    )
    .pluck();
  // S8: an idempotency record kept longer than the session's journal gets its own copy of
  // the outcome it pointed at before that entry goes (sqlite-apply.ts). The literal
  // `outcome_idx IS NOT NULL` lets SQLite use the partial index idempotency_journal_outcome;
  // records due for purge themselves are left to the idempotency part of the purge.
  const keepOutcomes = db.prepare<[number, string, number, number]>(
    `UPDATE idempotency
     SET outcome = (SELECT envelope FROM journal WHERE session_key = ? AND idx = idempotency.outcome_idx),
       outcome_idx = NULL
     WHERE session_id = ? AND outcome_idx IS NOT NULL AND outcome_idx <= ? AND created_at_ms >= ?`,
  );
  const deleteJournalUpTo = db.prepare<[number, number]>(
    "DELETE FROM journal WHERE session_key = ? AND idx <= ?",
  );
  const deleteJournal = db.prepare<[number]>("DELETE FROM journal WHERE session_key = ?");
  const deleteKey = db.prepare<[number]>("DELETE FROM session_keys WHERE key = ?");
  const deleteOutbox = db.prepare<[string]>("DELETE FROM outbox WHERE session_id = ?");
  const deleteSession = db.prepare<[string]>("DELETE FROM sessions WHERE id = ?");
  const deleteIdempotency = db.prepare<[number, number]>(
    "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency WHERE created_at_ms < ? LIMIT ?)",
  );

  return {
    start(endedBeforeMs, idempotencyBeforeMs) {
      let sessions = 0;
      let idempotency = 0;
      let sessionsDone = false;

      /** Deletes up to `budget` rows; returns how many it deleted. */
      const deleteSome = (budget: number): number => {
        let left = budget;
        while (left > 0 && !sessionsDone) {
          const id = nextDue.get(endedBeforeMs);
          if (id === undefined) {
            sessionsDone = true;
            break;
          }
          const key = keyById.get(id);
          if (key !== undefined) {
            const cut = journalCut.get(key, left - 1);
            left -= keepOutcomes.run(key, id, cut ?? Number.MAX_SAFE_INTEGER, idempotencyBeforeMs).changes;
            if (cut !== undefined) {
              left -= deleteJournalUpTo.run(key, cut).changes;
              continue;
            }
            left -= deleteJournal.run(key).changes;
            left -= deleteKey.run(key).changes;
          }
          left -= deleteOutbox.run(id).changes;
          left -= deleteSession.run(id).changes;
          sessions++;
        }
        if (left > 0 && sessionsDone) {
          const deleted = deleteIdempotency.run(idempotencyBeforeMs, left).changes;
          idempotency += deleted;
          left -= deleted;
        }
        return budget - left;
      };

      // A step that did not use its whole budget found nothing more to delete.
      const result = (rows: number, deleted: number): PurgeStep => ({
        deletedRows: deleted,
        done: deleted < rows ? { sessions, idempotency } : undefined,
      });

      return {
        stepWithin(rows) {
          savepoint.run();
          try {
            const deleted = deleteSome(rows);
            release.run();
            return result(rows, deleted);
          } catch (error) {
            if (db.inTransaction) {
              rollbackTo.run();
              release.run();
            }
            throw error;
          }
        },

        step(rows) {
          let deleted: number;
          // A step need not be durable on its own: one lost in a crash is done again by the
          // next purge, and the next commit's fsync (S9) covers its frames, which come
          // before that commit's in the WAL.
          db.pragma("synchronous = OFF");
          try {
            begin.run();
            try {
              deleted = deleteSome(rows);
              commit.run();
            } catch (error) {
              if (db.inTransaction) rollback.run();
              throw error;
            }
          } finally {
            db.pragma(`synchronous = ${synchronous === "full" ? "FULL" : "NORMAL"}`);
          }
          return result(rows, deleted);
        },
      };
    },
  };
}
