import type BetterSqlite3 from "better-sqlite3";
import { storeFailure } from "./store-errors.js";

/**
 * The SQLite schema, as a list of migrations. `PRAGMA user_version` records how many have
 * run; a later version of the bridge appends a migration and never edits an old one.
 */
const MIGRATIONS: readonly string[] = [
  // 1: sessions, journal (S9), outbox (S10), idempotency (S8).
  `
  CREATE TABLE sessions (
    id                TEXT PRIMARY KEY NOT NULL,
    service           TEXT NOT NULL,
    state             TEXT NOT NULL,
    end_reason        TEXT,
    correlation_set   TEXT,
    correlation       TEXT NOT NULL, -- JSON object: variable -> canonical text (S2)
    correlation_key   TEXT,
    principal         TEXT NOT NULL,
    created_at_ms     INTEGER NOT NULL,
    last_active_at_ms INTEGER NOT NULL,
    ended_at_ms       INTEGER,
    idle_timeout_ms   INTEGER NOT NULL,
    max_lifetime_ms   INTEGER NOT NULL,
    next_seq          INTEGER NOT NULL,
    journal_length    INTEGER NOT NULL
  );
  -- S5: correlation values are unique among the live sessions of a service, enforced by
  -- the database itself so no code path can bind them twice.
  CREATE UNIQUE INDEX sessions_live_correlation ON sessions (service, correlation_key)
    WHERE state = 'active' AND correlation_key IS NOT NULL;
  -- listSessions pages newest first, optionally within a service or an owner (S13).
  CREATE INDEX sessions_newest ON sessions (created_at_ms DESC, id);
  CREATE INDEX sessions_service_newest ON sessions (service, created_at_ms DESC, id);
  CREATE INDEX sessions_principal_newest ON sessions (principal, created_at_ms DESC, id);
  -- recover() reads live sessions (S10); purge() finds ended ones.
  CREATE INDEX sessions_live ON sessions (created_at_ms, id) WHERE state = 'active';
  CREATE INDEX sessions_ended ON sessions (ended_at_ms) WHERE state <> 'active';

  CREATE TABLE journal (
    session_id     TEXT NOT NULL,
    idx            INTEGER NOT NULL,
    message_id     TEXT NOT NULL,
    kind           INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    in_reply_to    TEXT NOT NULL,
    recorded_at_ms INTEGER NOT NULL,
    envelope       BLOB NOT NULL,
    PRIMARY KEY (session_id, idx)
  );
  -- S7: a duplicate sb-seq returns the recorded outcome; S8/S10 find requests by message id.
  -- idx ends each index so lookups come out in journal order without a scan of the session.
  CREATE INDEX journal_seq ON journal (session_id, seq, idx) WHERE seq > 0;
  CREATE INDEX journal_message ON journal (session_id, message_id, idx);
  CREATE INDEX journal_reply ON journal (session_id, in_reply_to, idx) WHERE in_reply_to <> '';

  CREATE TABLE outbox (
    session_id TEXT NOT NULL,
    message_id TEXT NOT NULL,
    idx        INTEGER NOT NULL,
    PRIMARY KEY (session_id, message_id)
  ) WITHOUT ROWID;
  -- S10: undelivered one-way messages are redelivered in journal order.
  CREATE INDEX outbox_order ON outbox (session_id, idx, message_id);

  CREATE TABLE idempotency (
    principal     TEXT NOT NULL,
    key           TEXT NOT NULL,
    request_hash  TEXT NOT NULL,
    operation     TEXT NOT NULL,
    session_id    TEXT,
    message_id    TEXT NOT NULL,
    created_at_ms INTEGER NOT NULL,
    outcome       BLOB,
    PRIMARY KEY (principal, key)
  );
  CREATE INDEX idempotency_created ON idempotency (created_at_ms);
  `,
  // 2: one index for exchanges instead of two. Every commit journals a request or an
  // outcome, and each index it touches is one more page the commit writes to the WAL. A
  // request is keyed by its own message id and an outcome by the message id it answers,
  // so one range scan finds a request and all its outcomes (S7, S8, S10).
  `
  DROP INDEX journal_message;
  DROP INDEX journal_reply;
  CREATE INDEX journal_exchange ON journal
    (session_id, (CASE WHEN in_reply_to <> '' THEN in_reply_to ELSE message_id END), idx);
  `,
  // 3: fewer pages per commit. The session row's hot fields (journal length, next sb-seq,
  // last activity) are read from the journal's tail past written_at_idx instead of being
  // written with every entry (sqlite-session-tail.ts); rows written so far were up to date,
  // so their mark is their journal's end. The outbox holds only what is in flight and is
  // sorted when recovered, so its order index goes.
  `
  ALTER TABLE sessions ADD COLUMN written_at_idx INTEGER NOT NULL DEFAULT 0;
  UPDATE sessions SET written_at_idx = coalesce((SELECT max(idx) FROM journal WHERE session_id = sessions.id), 0);
  DROP INDEX outbox_order;
  `,
];

/**
 * The key of journal_exchange, written exactly as in the index so that SQLite uses the
 * index for queries that compare it.
 */
export const EXCHANGE_KEY = "(CASE WHEN in_reply_to <> '' THEN in_reply_to ELSE message_id END)";

/** The user_version a fully migrated database has. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the database up to `toVersion` (SCHEMA_VERSION unless a test wants an older
 * one), one migration per transaction. The version is read inside the write transaction,
 * so two processes opening the same file at once cannot both run a migration.
 */
export function migrate(db: BetterSqlite3.Database, toVersion: number = SCHEMA_VERSION): void {
  for (;;) {
    const done = db
      .transaction(() => {
        const version = Number(db.pragma("user_version", { simple: true }));
        if (version > SCHEMA_VERSION) {
          throw storeFailure(
            `the database has schema version ${version}; this bridge knows versions up to ${SCHEMA_VERSION}`,
          );
        }
        const migration = version < toVersion ? MIGRATIONS[version] : undefined;
        if (migration === undefined) return true;
        db.exec(migration);
        db.pragma(`user_version = ${version + 1}`);
        return false;
      })
      .immediate();
    if (done) return;
  }
}
