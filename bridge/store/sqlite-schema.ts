import type BetterSqlite3 from "better-sqlite3";
import { EXCHANGE_KEY_FUNCTION, exchangeKey } from "./sqlite-exchange-key.js";
import { storeFailure } from "./store-errors.js";

/**
 * A migration that moves rows from one table to another: it runs as many short
 * transactions (each moves one batch), so the first start on a large old database neither
 * holds one transaction for the whole table nor needs the table twice in the WAL. Every
 * batch is atomic and the rows it moves leave the old table in the same transaction, so
 * a process killed mid-way leaves every row in exactly one of the two tables and the next
 * start goes on where it stopped.
 */
interface BatchedMigration {
  /** True once `begin` has run (it runs in the first batch's transaction). */
  begun(db: BetterSqlite3.Database): boolean;
  readonly begin: string;
  /** Rows left to move: once per start, for the progress log. */
  left(db: BetterSqlite3.Database): number;
  /** Moves at most `rows` rows; returns how many it moved (0: nothing left). */
  batch(db: BetterSqlite3.Database, rows: number): number;
  /** Runs with the version bump, once nothing is left to move. */
  readonly finish: string;
}

type Migration = string | BatchedMigration;

/**
 * 4: short integer keys in the journal's indexes. Each journal entry adds an entry to
 * three indexes (its key, journal_exchange, journal_seq for numbered requests), and with
 * two text ids in a key a 512-byte leaf held about seven of them: nearly every commit
 * split a leaf somewhere, and the index pages made two thirds of the WAL. A session gets
 * an integer key (session_keys) that the journal uses instead of its id, and
 * journal_exchange holds a hash of the exchange's message id (sqlite-exchange-key.ts). An
 * idempotency record whose outcome is a journal entry points at it (outcome_idx) instead
 * of holding a second copy of its bytes (S8).
 *
 * The journal moves to journal_by_key in batches in insertion order; a session gets its
 * key when its first entry moves (one without entries gets one with its first entry, as a
 * new session does). The new table has its indexes from the start, under their final
 * names (the old ones go first), so no index is built over the whole table at the end.
 */
const JOURNAL_KEYS: BatchedMigration = {
  begun: (db) =>
    db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'journal_by_key'").get() !==
    undefined,
  begin: `
  CREATE TABLE session_keys (
    key INTEGER PRIMARY KEY,
    id  TEXT NOT NULL UNIQUE
  );
  CREATE TABLE journal_by_key (
    session_key    INTEGER NOT NULL,
    idx            INTEGER NOT NULL,
    message_id     TEXT NOT NULL,
    kind           INTEGER NOT NULL,
    seq            INTEGER NOT NULL,
    in_reply_to    TEXT NOT NULL,
    exchange       INTEGER NOT NULL, -- sb_exchange_key(in_reply_to, else message_id)
    recorded_at_ms INTEGER NOT NULL,
    envelope       BLOB NOT NULL,
    PRIMARY KEY (session_key, idx)
  );
  DROP INDEX journal_seq;
  DROP INDEX journal_exchange;
  -- S7: a duplicate sb-seq returns the recorded outcome; S8/S10 find a request and the
  -- outcomes that answer it with one range scan.
  CREATE INDEX journal_seq ON journal_by_key (session_key, seq, idx) WHERE seq > 0;
  CREATE INDEX journal_exchange ON journal_by_key (session_key, exchange, idx);
  `,
  left: (db) => Number(db.prepare("SELECT count(*) FROM journal").pluck().get()),
  batch(db, rows) {
    // The last rowid of the batch: the rows up to it move, and leave the old table.
    const last = db
      .prepare<[number], number>("SELECT max(rowid) FROM (SELECT rowid FROM journal ORDER BY rowid LIMIT ?)")
      .pluck()
      .get(rows);
    if (last === null || last === undefined) return 0;
    db.prepare<[number]>(
      "INSERT OR IGNORE INTO session_keys (id) SELECT DISTINCT session_id FROM journal WHERE rowid <= ?",
    ).run(last);
    db.prepare<[number]>(
      `INSERT INTO journal_by_key
        (session_key, idx, message_id, kind, seq, in_reply_to, exchange, recorded_at_ms, envelope)
      SELECT k.key, j.idx, j.message_id, j.kind, j.seq, j.in_reply_to,
        sb_exchange_key(CASE WHEN j.in_reply_to <> '' THEN j.in_reply_to ELSE j.message_id END),
        j.recorded_at_ms, j.envelope
      FROM journal AS j JOIN session_keys AS k ON k.id = j.session_id
      WHERE j.rowid <= ?
      ORDER BY j.rowid`,
    ).run(last);
    return db.prepare<[number]>("DELETE FROM journal WHERE rowid <= ?").run(last).changes;
  },
  finish: `
  DROP TABLE journal;
  ALTER TABLE journal_by_key RENAME TO journal;
  ALTER TABLE idempotency ADD COLUMN outcome_idx INTEGER;
  -- A session's journal is purged before its row; the outcomes its idempotency records
  -- point at are copied into them first (sqlite-purge.ts), found by this index.
  CREATE INDEX idempotency_journal_outcome ON idempotency (session_id) WHERE outcome_idx IS NOT NULL;
  `,
};

/**
 * The SQLite schema, as a list of migrations. `PRAGMA user_version` records how many have
 * run; a later version of the bridge appends a migration and never edits an old one.
 */
const MIGRATIONS: readonly Migration[] = [
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
  // 4: short integer keys in the journal's indexes (JOURNAL_KEYS below).
  JOURNAL_KEYS,
];

/** The user_version a fully migrated database has. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/** Rows a batched migration moves per transaction: a few MiB of WAL each. */
export const MIGRATION_BATCH_ROWS = 4_096;

/** How a batched migration is getting on: after each batch, and when it ends. */
export interface MigrationProgress {
  /** The version the migration brings the database to. */
  readonly toVersion: number;
  /** Rows moved since this start, and rows there were to move when it began. */
  readonly movedRows: number;
  readonly totalRows: number;
  readonly done: boolean;
}

export interface MigrateOptions {
  /** SCHEMA_VERSION unless a test wants an older one. */
  readonly toVersion?: number;
  readonly batchRows?: number;
  /** Hears each batch; what it throws stops the migration after that batch, committed. */
  readonly onProgress?: (progress: MigrationProgress) => void;
}

/**
 * Brings the database up to `toVersion`, one migration per transaction, or one batch per
 * transaction for a batched migration. The version is read inside each write
 * transaction, so two processes opening the same file at once cannot both run a
 * migration; two that both move batches of the same one each move rows that are still
 * there, and only the one that finds nothing left finishes it.
 */
export function migrate(db: BetterSqlite3.Database, options: number | MigrateOptions = {}): void {
  const {
    toVersion = SCHEMA_VERSION,
    batchRows = MIGRATION_BATCH_ROWS,
    onProgress,
  } = typeof options === "number" ? { toVersion: options } : options;
  if (!Number.isSafeInteger(batchRows) || batchRows <= 0) {
    throw storeFailure(`batchRows must be a positive integer, got ${batchRows}`);
  }
  // Migration 4 computes the journal's exchange keys with the same function as the writer.
  db.function(EXCHANGE_KEY_FUNCTION, { deterministic: true }, (id: unknown) => exchangeKey(String(id)));
  // The batched migration in progress in this start: what it had to move, what it moved.
  let batched: { version: number; totalRows: number; movedRows: number } | undefined;
  for (;;) {
    const step = db
      .transaction((): MigrationProgress | "done" | "next" => {
        const version = Number(db.pragma("user_version", { simple: true }));
        if (version > SCHEMA_VERSION) {
          throw storeFailure(
            `the database has schema version ${version}; this bridge knows versions up to ${SCHEMA_VERSION}`,
          );
        }
        const migration = version < toVersion ? MIGRATIONS[version] : undefined;
        if (migration === undefined) return "done";
        if (typeof migration === "string") {
          db.exec(migration);
          db.pragma(`user_version = ${version + 1}`);
          return "next";
        }
        if (!migration.begun(db)) db.exec(migration.begin);
        if (batched?.version !== version) batched = { version, totalRows: migration.left(db), movedRows: 0 };
        const moved = migration.batch(db, batchRows);
        batched.movedRows += moved;
        const done = moved === 0;
        if (done) {
          db.exec(migration.finish);
          db.pragma(`user_version = ${version + 1}`);
        }
        return { toVersion: version + 1, movedRows: batched.movedRows, totalRows: batched.totalRows, done };
      })
      .immediate();
    if (step === "done") return;
    if (step !== "next") onProgress?.(step);
  }
}
