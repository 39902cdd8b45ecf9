import { mkdir } from "node:fs/promises";
import { dirname } from "node:path";
import type BetterSqlite3 from "better-sqlite3";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import { type Logger, silentLogger } from "../logger.js";
import { followStoredJournal } from "./journal-follow.js";
import { createJournalWakeups } from "./journal-wakeups.js";
import type { SessionStore } from "./session-store.js";
import { type SqliteCheckpointer, startSqliteCheckpointer } from "./sqlite-checkpointer-client.js";
import { openReaderConnection } from "./sqlite-connection.js";
import { DEFAULT_PURGE_STEP_BUDGET_MS } from "./sqlite-purge-pace.js";
import { createSqliteReader, type SqliteReader } from "./sqlite-reader.js";
import { startSqliteWriter, type WriterStats } from "./sqlite-writer-client.js";
import { asStoreError, storeClosed } from "./store-errors.js";

export interface SqliteStoreOptions {
  /** The database file; its directory is created if missing. */
  readonly path: string;
  /** "full" (default) fsyncs every group commit; "normal" survives a process crash but not power loss. */
  readonly synchronous?: "full" | "normal";
  /**
   * How long to wait for a lock another process holds on the file (a backup, a second
   * bridge by mistake) before failing the transaction with STORE_FAILURE. Default 5000.
   */
  readonly busyTimeoutMs?: number;
  /**
   * How long one purge step may hold the writer, in milliseconds: the step size follows
   * the measured step time to stay under it, and a commit waits for one step at most
   * (sqlite-purge-pace.ts). Default 4.
   */
  readonly purgeStepBudgetMs?: number;
  /** Hears the end of each purge (what it deleted, its steps) and the progress of upgrades. */
  readonly logger?: Logger;
}

const DEFAULT_BUSY_TIMEOUT_MS = 5000;

/**
 * Rows committed (sessions, entries, idempotency and outbox rows) between two requests to
 * the checkpointer: about 30 MiB of WAL for the engine's commit shapes. A page changed
 * many times in that window (an index leaf, the outbox, the journal's tail) reaches the
 * database once, and the checkpoint writes each 4 KiB page of the file it touches once:
 * every 4,096 rows it wrote about a fifth more per call (bench/store-write-amplification.ts).
 */
export const CHECKPOINT_EVERY_ROWS = 16_384;

/** The SQLite store, plus what it can tell about its writer. */
export interface SqliteSessionStore extends SessionStore {
  /**
   * Batches and write transactions so far (fewer transactions than batches is group commit
   * at work), what purges have done and the delay they added to commits, and checkpoints
   * run by the checkpointer thread.
   */
  stats(): WriterStats & { readonly checkpoints: number };
  /** Journal followers registered now. */
  followers(): number;
}

/**
 * The embedded durable store (S9, S10). Writes go to one connection in a worker thread
 * that group-commits them; reads use a read-only connection on the calling thread, which
 * WAL lets run while the writer commits.
 */
export async function createSqliteStore(options: SqliteStoreOptions): Promise<SqliteSessionStore> {
  const { path } = options;
  const synchronous = options.synchronous ?? "full";
  const busyTimeoutMs = options.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS;
  const purgeStepBudgetMs = options.purgeStepBudgetMs ?? DEFAULT_PURGE_STEP_BUDGET_MS;
  const logger = options.logger ?? silentLogger;
  if (typeof path !== "string" || path === "" || path === ":memory:" || path.startsWith("file:")) {
    throw invalidConfig(`the SQLite store needs a file path, got ${JSON.stringify(path)}`);
  }
  if (synchronous !== "full" && synchronous !== "normal") {
    throw invalidConfig(`synchronous must be "full" or "normal", got ${JSON.stringify(synchronous)}`);
  }
  if (!Number.isSafeInteger(busyTimeoutMs) || busyTimeoutMs < 0) {
    throw invalidConfig(`busyTimeoutMs must be a non-negative integer, got ${busyTimeoutMs}`);
  }
  if (
    typeof purgeStepBudgetMs !== "number" ||
    !(purgeStepBudgetMs > 0) ||
    !Number.isFinite(purgeStepBudgetMs)
  ) {
    throw invalidConfig(`purgeStepBudgetMs must be a positive number, got ${purgeStepBudgetMs}`);
  }
  try {
    await mkdir(dirname(path), { recursive: true });
  } catch (error) {
    throw asStoreError(error, `cannot create the directory of ${path}`);
  }

  // Commits and purge steps both fill the WAL; every CHECKPOINT_EVERY_ROWS rows of either
  // ask the checkpointer to copy it.
  let rowsSinceCheckpoint = 0;
  // The checkpointer thread starts when the first checkpoint is due: until then the WAL
  // is small, and an idle or lightly used bridge does not hold the thread's V8 isolate
  // (about 6 MB resident). If it cannot start, the next checkpoint due tries again; the
  // writer still checkpoints by itself past its own, larger limit (sqlite-writer.ts).
  let checkpointer: SqliteCheckpointer | undefined;
  let starting: Promise<void> | undefined;
  let closing: Promise<void> | undefined;
  const wrote = (rows: number): void => {
    rowsSinceCheckpoint += rows;
    if (rowsSinceCheckpoint < CHECKPOINT_EVERY_ROWS) return;
    rowsSinceCheckpoint = 0;
    if (checkpointer !== undefined) checkpointer.request();
    else if (closing === undefined) {
      starting ??= startSqliteCheckpointer({ path, busyTimeoutMs }).then(
        (started) => {
          checkpointer = started;
          started.request();
        },
        () => {
          starting = undefined;
        },
      );
    }
  };
  // The writer creates and migrates the file, so it exists before the reader opens it.
  const writer = await startSqliteWriter(
    { path, synchronous, busyTimeoutMs, purgeStepBudgetMs },
    {
      onPurgeRows: wrote,
      onPurged: (purged, run) =>
        logger.info(
          {
            ...purged,
            steps: run.steps,
            rows: run.rows,
            stepMs: round(run.stepMs),
            longestStepMs: round(run.longestStepMs),
            delayedCommits: run.delayedCommits,
            longestDelayMs: round(run.longestDelayMs),
          },
          "sqlite purge finished",
        ),
      onMigrating: (progress) =>
        logger.info(
          { path, ...progress },
          progress.done ? "sqlite schema upgraded" : "sqlite schema upgrade in progress",
        ),
    },
  );
  let opened: BetterSqlite3.Database | undefined;
  let reader: SqliteReader;
  try {
    opened = openReaderConnection(path, busyTimeoutMs);
    reader = createSqliteReader(opened);
  } catch (error) {
    opened?.close();
    await writer.close();
    throw asStoreError(error, `cannot open ${path} for reading`);
  }

  const connection = opened;
  const wakeups = createJournalWakeups();

  /** Runs a read on the reader connection; fails once close() has begun. */
  const read = async <T>(query: (r: SqliteReader) => T): Promise<T> => {
    if (closing !== undefined) throw storeClosed("sqlite");
    try {
      return query(reader);
    } catch (error) {
      throw asStoreError(error, "cannot read the SQLite store");
    }
  };

  function readJournal(sessionId: string, fromIndex: number, limit: number) {
    return read((r) => r.readJournal(sessionId, fromIndex, limit));
  }

  return {
    kind: "sqlite",

    async commit(batch) {
      if (closing !== undefined) throw storeClosed("sqlite");
      const touched =
        batch.entries === undefined ? undefined : new Set(batch.entries.map((e) => e.sessionId));
      const rows =
        (batch.sessions?.length ?? 0) +
        (batch.entries?.length ?? 0) +
        (batch.idempotency?.length ?? 0) +
        (batch.outboxAdd?.length ?? 0) +
        (batch.outboxRemove?.length ?? 0);
      await writer.commit(batch);
      wrote(rows);
      // S9: followers hear of entries once they are durable, and re-read them.
      if (touched !== undefined) wakeups.notify(touched);
    },

    recover: () => read((r) => r.recover()),
    getSession: (id) => read((r) => r.getSession(id)),
    findSessionByCorrelation: (service, correlationKey) =>
      read((r) => r.findSessionByCorrelation(service, correlationKey)),
    listSessions: (query) => read((r) => r.listSessions(query)),
    readJournal,
    followJournal: (sessionId, fromIndex, signal) =>
      followStoredJournal({ readJournal, wakeups }, sessionId, fromIndex, signal),
    findBySeq: (sessionId, seq) => read((r) => r.findBySeq(sessionId, seq)),
    findByMessageId: (sessionId, messageId) => read((r) => r.findByMessageId(sessionId, messageId)),
    getIdempotency: (principal, key) => read((r) => r.getIdempotency(principal, key)),

    async purge(endedBeforeMs, idempotencyBeforeMs) {
      if (closing !== undefined) throw storeClosed("sqlite");
      // It deletes, so it goes through the writer like any batch.
      return writer.purge(endedBeforeMs, idempotencyBeforeMs);
    },

    stats: () => ({ ...writer.stats(), checkpoints: checkpointer?.checkpoints() ?? 0 }),
    followers: () => wakeups.followers(),

    close,
    [Symbol.asyncDispose]: close,
  };

  function close(): Promise<void> {
    closing ??= (async () => {
      // The reader goes first so the writer, as the last connection, can checkpoint the
      // WAL into the database and remove it. The writer answers pending batches first.
      wakeups.close();
      connection.close();
      await starting;
      await checkpointer?.close();
      await writer.close();
    })();
    return closing;
  }
}

/** Milliseconds to a hundredth, for log lines. */
function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}

function invalidConfig(message: string): BridgeError {
  return new BridgeError(Code.INVALID_ARGUMENT, Reason.INVALID_CONFIG, message);
}
