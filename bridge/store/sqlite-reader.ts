import type BetterSqlite3 from "better-sqlite3";
import type { IdempotencyRecord, JournalRecord, SessionRecord } from "./records.js";
import type { RecordedExchange, RecoveredState, SessionPage, SessionQuery } from "./session-store.js";
import { exchangeKey } from "./sqlite-exchange-key.js";
import type { IdempotencyRow, JournalRow, OutboxRow, StoredSessionRow } from "./sqlite-rows.js";
import { rowToEntry, rowToIdempotency, rowToOutbox, rowToSession } from "./sqlite-rows.js";
import { type JournalTail, TAIL_COLUMNS, withJournalTail } from "./sqlite-session-tail.js";
import { checkJournalRange, checkPageSize, decodePageToken, encodePageToken } from "./store-query.js";

/**
 * The queries of the SQLite store, on the read-only connection of the main thread. Each
 * statement sees every transaction committed before it started, so a commit whose promise
 * has resolved is visible to the next read.
 */
export interface SqliteReader {
  recover(): RecoveredState;
  getSession(id: string): SessionRecord | undefined;
  findSessionByCorrelation(service: string, correlationKey: string): SessionRecord | undefined;
  listSessions(query: SessionQuery): SessionPage;
  readJournal(sessionId: string, fromIndex: number, limit: number): JournalRecord[];
  findBySeq(sessionId: string, seq: number): RecordedExchange | undefined;
  findByMessageId(sessionId: string, messageId: string): RecordedExchange | undefined;
  getIdempotency(principal: string, key: string): IdempotencyRecord | undefined;
}

type SessionWithTail = StoredSessionRow & JournalTail;

/** A session's journal key, from the query's first parameter, its id. */
const KEY_OF = "(SELECT key FROM session_keys WHERE id = ?)";

const toSession = (row: SessionWithTail): SessionRecord => rowToSession(withJournalTail(row));

export function createSqliteReader(db: BetterSqlite3.Database): SqliteReader {
  // Every read of a session row takes its hot fields from its journal's tail as well.
  const liveSessions = db.prepare<[], SessionWithTail>(
    `SELECT sessions.*, ${TAIL_COLUMNS} FROM sessions WHERE state = 'active' ORDER BY created_at_ms, id`,
  );
  // Sorted here rather than kept in an index: the outbox holds only what is in flight, and
  // an index would be one more page in the WAL of every commit.
  const allOutbox = db.prepare<[], OutboxRow>("SELECT * FROM outbox ORDER BY session_id, idx, message_id");
  const sessionById = db.prepare<[string], SessionWithTail>(
    `SELECT sessions.*, ${TAIL_COLUMNS} FROM sessions WHERE id = ?`,
  );
  // S5: the literal `state = 'active'` lets SQLite use the partial unique index
  // sessions_live_correlation, whose condition this query implies.
  const liveByCorrelation = db.prepare<[string, string], SessionWithTail>(
    `SELECT sessions.*, ${TAIL_COLUMNS} FROM sessions
     WHERE service = ? AND correlation_key = ? AND state = 'active'`,
  );
  // The journal names a session by its key; each query looks it up once.
  const journalFrom = db.prepare<[string, number, number], JournalRow>(
    `SELECT * FROM journal WHERE session_key = ${KEY_OF} AND idx >= ? ORDER BY idx LIMIT ?`,
  );
  // The literal `seq > 0` lets SQLite use the partial index journal_seq.
  const requestBySeq = db.prepare<[string, number], JournalRow>(
    `SELECT * FROM journal WHERE session_key = ${KEY_OF} AND seq = ? AND seq > 0 ORDER BY idx LIMIT 1`,
  );
  // Both on journal_exchange (a hash of the id, then the id itself compared): a request (an
  // entry that answers none) by its message id, and the outcomes that answer it.
  const requestByMessageId = db.prepare<[string, number, string], JournalRow>(
    `SELECT * FROM journal WHERE session_key = ${KEY_OF} AND exchange = ? AND in_reply_to = '' AND message_id = ?
     ORDER BY idx LIMIT 1`,
  );
  const outcomesOf = db.prepare<[number, number, string], JournalRow>(
    `SELECT * FROM journal WHERE session_key = ? AND exchange = ? AND in_reply_to = ? AND in_reply_to <> ''
     ORDER BY idx`,
  );
  // An outcome held as a journal entry (outcome_idx) is read from the journal (sqlite-apply.ts).
  const idempotencyByKey = db.prepare<[string, string], IdempotencyRow>(
    `SELECT principal, key, request_hash, operation, session_id, message_id, created_at_ms,
       CASE WHEN outcome_idx IS NULL THEN outcome ELSE
         (SELECT envelope FROM journal
          WHERE session_key = (SELECT key FROM session_keys WHERE id = idempotency.session_id)
            AND idx = idempotency.outcome_idx)
       END AS outcome
     FROM idempotency WHERE principal = ? AND key = ?`,
  );
  const listStatements = new Map<
    string,
    BetterSqlite3.Statement<[Record<string, unknown>], SessionWithTail>
  >();

  // A read transaction gives queries that belong together one snapshot.
  const readTransaction = db.transaction((read: () => unknown) => read());
  const snapshot = <T>(read: () => T): T => readTransaction.deferred(read) as T;

  const exchange = (sessionId: string, request: JournalRow | undefined): RecordedExchange | undefined => {
    if (request === undefined) return undefined;
    return {
      request: rowToEntry(request, sessionId),
      outcomes: outcomesOf
        .all(request.session_key, exchangeKey(request.message_id), request.message_id)
        .map((row) => rowToEntry(row, sessionId)),
    };
  };

  /** One prepared statement per combination of filters, each able to use an index. */
  const listStatement = (query: SessionQuery, paged: boolean) => {
    const shape = [query.service, query.state, query.principal]
      .map((f) => (f === undefined ? "-" : "+"))
      .join("");
    const key = `${shape}${paged ? "+" : "-"}`;
    let statement = listStatements.get(key);
    if (statement === undefined) {
      const where: string[] = [];
      if (query.service !== undefined) where.push("service = @service");
      if (query.state !== undefined) where.push("state = @state");
      if (query.principal !== undefined) where.push("principal = @principal");
      // Keyset paging: rows after the last one returned, in (created_at_ms DESC, id) order.
      if (paged) where.push("created_at_ms <= @afterMs AND (created_at_ms < @afterMs OR id > @afterId)");
      statement = db.prepare(
        `SELECT sessions.*, ${TAIL_COLUMNS} FROM sessions ${where.length > 0 ? `WHERE ${where.join(" AND ")}` : ""}
         ORDER BY created_at_ms DESC, id LIMIT @limit`,
      );
      listStatements.set(key, statement);
    }
    return statement;
  };

  return {
    recover: () =>
      snapshot(() => ({
        sessions: liveSessions.all().map(toSession),
        outbox: allOutbox.all().map(rowToOutbox),
      })),

    getSession(id) {
      const row = sessionById.get(id);
      return row === undefined ? undefined : toSession(row);
    },

    findSessionByCorrelation(service, correlationKey) {
      const row = liveByCorrelation.get(service, correlationKey);
      return row === undefined ? undefined : toSession(row);
    },

    listSessions(query) {
      checkPageSize(query.pageSize);
      const after = decodePageToken(query.pageToken);
      const params: Record<string, unknown> = { limit: query.pageSize + 1 };
      if (query.service !== undefined) params.service = query.service;
      if (query.state !== undefined) params.state = query.state;
      if (query.principal !== undefined) params.principal = query.principal;
      if (after !== undefined) {
        params.afterMs = after.createdAtMs;
        params.afterId = after.id;
      }
      // One row more than the page tells whether another page follows.
      const rows = listStatement(query, after !== undefined).all(params);
      const page = rows.slice(0, query.pageSize).map(toSession);
      const last = page[page.length - 1];
      return {
        sessions: page,
        nextPageToken: rows.length > page.length && last !== undefined ? encodePageToken(last) : undefined,
      };
    },

    readJournal(sessionId, fromIndex, limit) {
      checkJournalRange(fromIndex, limit);
      return journalFrom.all(sessionId, fromIndex, limit).map((row) => rowToEntry(row, sessionId));
    },

    findBySeq: (sessionId, seq) => snapshot(() => exchange(sessionId, requestBySeq.get(sessionId, seq))),

    findByMessageId: (sessionId, messageId) =>
      snapshot(() =>
        exchange(sessionId, requestByMessageId.get(sessionId, exchangeKey(messageId), messageId)),
      ),

    getIdempotency(principal, key) {
      const row = idempotencyByKey.get(principal, key);
      return row === undefined ? undefined : rowToIdempotency(row);
    },
  };
}
