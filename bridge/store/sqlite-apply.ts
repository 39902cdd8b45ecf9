import type BetterSqlite3 from "better-sqlite3";
import { checkJournalAppend } from "./journal-append.js";
import type { IdempotencyRecord, JournalRecord, SessionRecord } from "./records.js";
import type { StoreBatch } from "./session-store.js";
import type { WriterRequest, WriterResult } from "./sqlite-protocol.js";
import { toWireError } from "./sqlite-protocol.js";
import {
  entryToParams,
  idempotencyToRow,
  type JournalParams,
  outboxToRow,
  type StoredSessionRow,
  sessionToRow,
} from "./sqlite-rows.js";
import {
  derivable,
  type JournalTail,
  sameColdFields,
  TAIL_COLUMNS_BY_KEY,
  withJournalTail,
} from "./sqlite-session-tail.js";
import { correlationTaken } from "./store-errors.js";

export type CommitRequest = Extract<WriterRequest, { type: "commit" }>;

/** Applies a group of commits in one write transaction: the writer thread's main job. */
export interface GroupApplier {
  /**
   * One result per request, in order, and whether the transaction committed.
   * `alongside` runs in the same transaction after the requests (a purge step that then
   * costs no fsync of its own); it must not throw.
   */
  apply(
    requests: readonly CommitRequest[],
    alongside?: () => void,
  ): { results: WriterResult[]; committed: boolean };
}

/**
 * Group commit (S9): every request queued while the previous transaction was being made
 * durable goes into one transaction, so one fsync covers them all. A request that fails
 * (S5 conflict, duplicate journal index) is rolled back alone and its neighbours still
 * commit: the group then runs again with each request in its own SAVEPOINT. Journal
 * appends are checked against the stored last index of each session (checkJournalAppend),
 * inside the same transaction, so a conflicting batch is refused before it writes
 * anything. If the transaction itself fails, nothing in it happened and every request in
 * it fails.
 */
export function createGroupApplier(db: BetterSqlite3.Database): GroupApplier {
  const begin = db.prepare("BEGIN IMMEDIATE");
  const commit = db.prepare("COMMIT");
  const rollback = db.prepare("ROLLBACK");
  const savepoint = db.prepare("SAVEPOINT request");
  const release = db.prepare("RELEASE request");
  const rollbackTo = db.prepare("ROLLBACK TO request");

  // ON CONFLICT(id) DO UPDATE rather than INSERT OR REPLACE: REPLACE would resolve a
  // conflict on the S5 index by deleting the other live session instead of failing.
  const upsertSession = db.prepare(`
    INSERT INTO sessions (id, service, state, end_reason, correlation_set, correlation, correlation_key,
      principal, created_at_ms, last_active_at_ms, ended_at_ms, idle_timeout_ms, max_lifetime_ms,
      next_seq, journal_length, written_at_idx)
    VALUES (@id, @service, @state, @end_reason, @correlation_set, @correlation, @correlation_key,
      @principal, @created_at_ms, @last_active_at_ms, @ended_at_ms, @idle_timeout_ms, @max_lifetime_ms,
      @next_seq, @journal_length, @written_at_idx)
    ON CONFLICT (id) DO UPDATE SET service = excluded.service, state = excluded.state,
      end_reason = excluded.end_reason, correlation_set = excluded.correlation_set,
      correlation = excluded.correlation, correlation_key = excluded.correlation_key,
      principal = excluded.principal, created_at_ms = excluded.created_at_ms,
      last_active_at_ms = excluded.last_active_at_ms, ended_at_ms = excluded.ended_at_ms,
      idle_timeout_ms = excluded.idle_timeout_ms, max_lifetime_ms = excluded.max_lifetime_ms,
      next_seq = excluded.next_seq, journal_length = excluded.journal_length,
      written_at_idx = excluded.written_at_idx`);
  // Only the hot fields: no index covers them, so the update writes the row's page alone
  // where the full upsert rewrites every index of the table.
  const touchSession = db.prepare(`
    UPDATE sessions SET last_active_at_ms = @last_active_at_ms, next_seq = @next_seq,
      journal_length = @journal_length, written_at_idx = @written_at_idx
    WHERE id = @id`);
  // The session's journal key is known here (keys below), so the tail is read by it.
  const storedSession = db.prepare<[{ id: string; key: number | null }], StoredSessionRow & JournalTail>(
    `SELECT sessions.*, ${TAIL_COLUMNS_BY_KEY} FROM sessions WHERE id = @id`,
  );
  // Positional parameters (one array, in JournalParams order).
  const insertEntry = db.prepare<[JournalParams]>(`
    INSERT INTO journal (session_key, idx, message_id, kind, seq, in_reply_to, exchange, recorded_at_ms, envelope)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`);
  const keyById = db.prepare<[string], number>("SELECT key FROM session_keys WHERE id = ?").pluck();
  const insertKey = db.prepare<[string]>("INSERT INTO session_keys (id) VALUES (?)");
  const upsertIdempotency = db.prepare(`
    INSERT INTO idempotency (principal, key, request_hash, operation, session_id, message_id, created_at_ms,
      outcome, outcome_idx)
    VALUES (@principal, @key, @request_hash, @operation, @session_id, @message_id, @created_at_ms,
      @outcome, @outcome_idx)
    ON CONFLICT (principal, key) DO UPDATE SET request_hash = excluded.request_hash,
      operation = excluded.operation, session_id = excluded.session_id, message_id = excluded.message_id,
      created_at_ms = excluded.created_at_ms, outcome = excluded.outcome, outcome_idx = excluded.outcome_idx`);
  // The common second write of a record (S8): the same call, now with its outcome. Only the
  // outcome columns change, so the record's row is the only page of the table it writes.
  const completeIdempotency = db.prepare(`
    UPDATE idempotency SET outcome = @outcome, outcome_idx = @outcome_idx
    WHERE principal = @principal AND key = @key AND request_hash = @request_hash AND operation = @operation
      AND session_id IS @session_id AND message_id = @message_id AND created_at_ms = @created_at_ms`);
  const upsertOutbox = db.prepare(`
    INSERT INTO outbox (session_id, message_id, idx) VALUES (@session_id, @message_id, @idx)
    ON CONFLICT (session_id, message_id) DO UPDATE SET idx = excluded.idx`);
  const deleteOutbox = db.prepare("DELETE FROM outbox WHERE session_id = ? AND message_id = ?");
  // One seek on the journal's key (session_key, idx).
  const lastIndex = db
    .prepare<[number], number | null>("SELECT max(idx) FROM journal WHERE session_key = ?")
    .pluck();

  /**
   * What one unit of work (the whole group's transaction, or one commit's savepoint) has
   * learnt about the sessions it touches, read from the database once and then kept up to
   * date as the unit writes: each session's journal key, its journal's last index, and its
   * stored row with the journal's tail. A session gets its key with its first entry.
   * Made per unit: a savepoint rolled back takes what it wrote, keys included, with it.
   *
   * A group of commits of one session (a shared operation's calls, S6: they run
   * concurrently) would otherwise read the same key, last index and row once per commit;
   * every commit of the group sees what the ones before it wrote, from here instead.
   */
  const unitState = () => {
    const known = new Map<string, number | undefined>();
    const last = new Map<string, number>();
    const rows = new Map<string, StoredSessionRow & JournalTail>();
    const find = (sessionId: string): number | undefined => {
      if (known.has(sessionId)) return known.get(sessionId);
      const key = keyById.get(sessionId);
      known.set(sessionId, key);
      return key;
    };
    return {
      find,
      give(sessionId: string): number {
        const held = find(sessionId);
        if (held !== undefined) return held;
        const key = Number(insertKey.run(sessionId).lastInsertRowid);
        known.set(sessionId, key);
        return key;
      },
      lastIndex(sessionId: string): number {
        const held = last.get(sessionId);
        if (held !== undefined) return held;
        const key = find(sessionId);
        const read = key === undefined ? 0 : (lastIndex.get(key) ?? 0);
        last.set(sessionId, read);
        return read;
      },
      /** An entry was inserted: it is its session's journal tail now (checkJournalAppend). */
      appended(entry: JournalRecord): void {
        last.set(entry.sessionId, entry.index);
        const row = rows.get(entry.sessionId);
        if (row === undefined) return;
        row.tail_idx = entry.index;
        // The tail's columns as TAIL_COLUMNS_BY_KEY reads them: the highest sb-seq (S7), and
        // the time of the entry with the highest index, which is this one.
        if (entry.seq > 0) row.tail_seq = Math.max(row.tail_seq ?? 0, entry.seq);
        row.tail_at = entry.recordedAtMs;
      },
      /** The session's stored row with its journal's tail, as this unit has left it. */
      row(sessionId: string): (StoredSessionRow & JournalTail) | undefined {
        const held = rows.get(sessionId);
        if (held !== undefined) return held;
        const read = storedSession.get({ id: sessionId, key: find(sessionId) ?? null });
        if (read !== undefined) rows.set(sessionId, read);
        return read;
      },
      /** The row's hot fields were written (touchSession). */
      touched(
        sessionId: string,
        hot: Pick<StoredSessionRow, "last_active_at_ms" | "next_seq" | "journal_length" | "written_at_idx">,
      ): void {
        const row = rows.get(sessionId);
        if (row !== undefined) Object.assign(row, hot);
      },
      /** The whole row was written: read it again if this unit needs it again (rare: a start, an end). */
      rewritten(sessionId: string): void {
        rows.delete(sessionId);
      },
    };
  };

  type UnitState = ReturnType<typeof unitState>;

  /**
   * Writes an idempotency record (S8). When its outcome is the envelope of an outcome entry
   * of the same batch (the engine completes a record with the entry that answers its call),
   * the row points at that entry instead of holding the same bytes again.
   */
  const storeIdempotency = (record: IdempotencyRecord, entries: readonly JournalRecord[]): void => {
    const row = idempotencyToRow(record);
    const outcome = record.outcome;
    const answer =
      outcome === undefined || record.sessionId === undefined
        ? undefined
        : entries.find(
            (e) =>
              e.sessionId === record.sessionId &&
              e.inReplyTo === record.messageId &&
              e.inReplyTo !== "" &&
              sameBytes(e.envelope, outcome),
          );
    const stored =
      answer === undefined
        ? { ...row, outcome_idx: null }
        : { ...row, outcome: null, outcome_idx: answer.index };
    if (outcome !== undefined && completeIdempotency.run(stored).changes === 1) return;
    upsertIdempotency.run(stored);
  };

  /**
   * Writes what a session record says that its stored row and journal do not
   * (sqlite-session-tail.ts). The common commit, a live session whose journal moved on,
   * writes nothing to the sessions table.
   */
  const storeSession = (record: SessionRecord, unit: UnitState): void => {
    const row = sessionToRow(record);
    const stored = unit.row(record.id);
    if (stored !== undefined) {
      const current = withJournalTail(stored);
      if (derivable(row, current)) return;
      if (sameColdFields(row, current)) {
        const hot = {
          last_active_at_ms: row.last_active_at_ms,
          next_seq: row.next_seq,
          journal_length: row.journal_length,
          written_at_idx: stored.tail_idx ?? 0,
        };
        touchSession.run({ id: row.id, ...hot });
        unit.touched(record.id, hot);
        return;
      }
    }
    const writtenAt = stored === undefined ? unit.lastIndex(record.id) : (stored.tail_idx ?? 0);
    unit.rewritten(record.id);
    try {
      upsertSession.run({ ...row, written_at_idx: writtenAt });
    } catch (error) {
      // The primary key is handled by the upsert, so the only unique index left is S5's.
      if ((error as { code?: unknown }).code === "SQLITE_CONSTRAINT_UNIQUE") {
        throw correlationTaken(record.service, record.id);
      }
      throw error;
    }
  };

  const applyBatch = (batch: StoreBatch, unit: UnitState): void => {
    const entries = batch.entries ?? [];
    checkJournalAppend(entries, unit.lastIndex);
    // Entries first: a session row written in this batch records the journal's new end.
    for (const entry of entries) {
      insertEntry.run(entryToParams(entry, unit.give(entry.sessionId)));
      unit.appended(entry);
    }
    for (const record of batch.sessions ?? []) storeSession(record, unit);
    for (const record of batch.idempotency ?? []) storeIdempotency(record, entries);
    for (const item of batch.outboxAdd ?? []) upsertOutbox.run(outboxToRow(item));
    for (const item of batch.outboxRemove ?? []) deleteOutbox.run(item.sessionId, item.messageId);
  };

  const rollbackQuietly = (): void => {
    if (!db.inTransaction) return;
    try {
      rollback.run();
    } catch {
      // The connection is already out of the transaction or unusable; the caller's error says why.
    }
  };

  /** Every request fails with the transaction's error: nothing of the group happened. */
  const transactionFailed = (
    requests: readonly CommitRequest[],
    error: unknown,
  ): { results: WriterResult[]; committed: false } => {
    const failed = { ok: false, error: toWireError(error, "the transaction was not recorded") } as const;
    return { results: requests.map(() => failed), committed: false };
  };

  return {
    apply(requests, alongside) {
      // First without savepoints: a savepoint per request costs two statements and copies
      // each page the request changes to the statement journal, and a request is refused
      // (S5 conflict, journal conflict) far more rarely than it commits. When one is
      // refused, the transaction is rolled back and the group runs again request by
      // request in savepoints (below), so its neighbours still commit; the alongside step
      // has not run yet at that point.
      let refusal: unknown;
      try {
        begin.run();
      } catch (error) {
        return transactionFailed(requests, error);
      }
      try {
        // One unit for the group: if any commit is refused, all of it is rolled back.
        const unit = unitState();
        for (const request of requests) applyBatch(request.batch, unit);
      } catch (error) {
        refusal = error;
      }
      if (refusal === undefined) {
        try {
          alongside?.();
          commit.run();
          return { results: requests.map(() => ({ ok: true })), committed: true };
        } catch (error) {
          rollbackQuietly();
          return transactionFailed(requests, error);
        }
      }
      rollbackQuietly();
      const [only] = requests;
      // A lone request's refusal is its answer: the transaction held nothing else.
      if (requests.length === 1 && only !== undefined && alongside === undefined) {
        return {
          results: [{ ok: false, error: toWireError(refusal, "the batch was not recorded") }],
          committed: false,
        };
      }
      const results: WriterResult[] = [];
      try {
        begin.run();
        for (const request of requests) {
          savepoint.run();
          try {
            applyBatch(request.batch, unitState());
            results.push({ ok: true });
            release.run();
          } catch (error) {
            // Some errors (disk full, I/O) make SQLite roll back the whole transaction:
            // then the earlier requests are gone too and the group fails as one.
            if (!db.inTransaction) throw error;
            rollbackTo.run();
            release.run();
            results.push({ ok: false, error: toWireError(error, "the batch was not recorded") });
          }
        }
        alongside?.();
        commit.run();
        return { results, committed: true };
      } catch (error) {
        rollbackQuietly();
        return transactionFailed(requests, error);
      }
    },
  };
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(b);
}
