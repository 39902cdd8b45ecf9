import { Worker } from "node:worker_threads";
import type { BridgeError } from "../errors/bridge-error.js";
import { copyBatch } from "./record-copy.js";
import type { StoreBatch } from "./session-store.js";
import type { PurgeCounts, PurgeRun, WriterOptions, WriterReply, WriterRequest } from "./sqlite-protocol.js";
import { fromWireError } from "./sqlite-protocol.js";
import type { MigrationProgress } from "./sqlite-schema.js";
import { storeClosed, storeFailure } from "./store-errors.js";

/** What the writer thread has done, to observe group commit (several batches per transaction). */
export interface WriterStats {
  /** Batches the writer has answered (committed or rejected). */
  readonly batches: number;
  /**
   * Write transactions of batches it has run; each is one fsync under synchronous=FULL.
   * Purge steps run in transactions of their own and are not counted here.
   */
  readonly transactions: number;
  /**
   * Messages posted to the writer thread and replies received from it: each is a
   * structured clone and a wake-up of the thread it goes to.
   */
  readonly messagesSent: number;
  readonly messagesReceived: number;
  /** Purge steps that deleted something, each in a group's transaction or a short one of its own. */
  readonly purgeSteps: number;
  /** Rows those steps deleted. */
  readonly purgeRows: number;
  /** The time those steps held the writer, together, in milliseconds. */
  readonly purgeStepMs: number;
  /** The longest any purge step held the writer, in milliseconds: what a commit could wait for it. */
  readonly longestPurgeStepMs: number;
  /** Purge steps that held the writer more than 10 ms (a loaded machine descheduling the thread). */
  readonly purgeStepsOver10Ms: number;
  /**
   * Commits that waited for a purge step (one that ran when they arrived, or one in their
   * own transaction), the longest such wait in milliseconds, and how many waited more than
   * 10 ms: the delay purges added to calls (S9: a call is answered once its commit is durable).
   */
  readonly purgeDelayedCommits: number;
  readonly longestPurgeDelayMs: number;
  readonly purgeDelaysOver10Ms: number;
}

/** What the store hears from its writer besides answers. */
export interface WriterEvents {
  /** Rows a purge step deleted (WAL written that the checkpointer will copy). */
  readonly onPurgeRows?: (rows: number) => void;
  /** A purge finished: what it deleted and how it went. */
  readonly onPurged?: (purged: PurgeCounts, run: PurgeRun) => void;
  /** How a schema upgrade at startup is getting on. */
  readonly onMigrating?: (progress: MigrationProgress) => void;
}

/** The main thread's handle on the writer thread (sqlite-writer.ts). */
export interface SqliteWriter {
  /** Resolves once the batch is durable (S9); batches resolve in the order they were sent. */
  commit(batch: StoreBatch): Promise<void>;
  purge(endedBeforeMs: number, idempotencyBeforeMs: number): Promise<PurgeCounts>;
  stats(): WriterStats;
  /** Answers everything sent before, then closes the connection and stops the thread. Idempotent. */
  close(): Promise<void>;
}

interface Pending<T> {
  resolve(value: T): void;
  reject(error: BridgeError): void;
}

/** Starts the writer thread; resolves once it has opened and migrated the database. */
export function startSqliteWriter(options: WriterOptions, events: WriterEvents = {}): Promise<SqliteWriter> {
  const worker = new Worker(new URL("./sqlite-writer.js", import.meta.url), { workerData: options });
  // Answers arrive in request order, so the oldest pending commit owns the next result,
  // and the oldest pending purge the next `purged` reply.
  const pending: Pending<void>[] = [];
  const purging: Pending<PurgeCounts>[] = [];
  let batches = 0;
  let transactions = 0;
  let messagesSent = 0;
  let messagesReceived = 0;
  let purgeSteps = 0;
  let purgeRows = 0;
  let purgeStepMs = 0;
  let longestPurgeStepMs = 0;
  let purgeStepsOver10Ms = 0;
  let purgeDelayedCommits = 0;
  let longestPurgeDelayMs = 0;
  let purgeDelaysOver10Ms = 0;
  let stopped: BridgeError | undefined;
  let threadError: unknown;
  let closing: Promise<void> | undefined;
  let closeRequested = false;
  let onClosed: (() => void) | undefined;
  let startup: { resolve(): void; reject(error: BridgeError): void } | undefined;

  const finishStartup = (): typeof startup => {
    const waiting = startup;
    startup = undefined;
    return waiting;
  };

  // An idle writer does not keep the process alive: everything it answered is already durable.
  const updateRef = (): void => {
    if (pending.length > 0 || purging.length > 0 || closeRequested) worker.ref();
    else worker.unref();
  };

  worker.on("message", (reply: WriterReply) => {
    messagesReceived++;
    switch (reply.type) {
      case "ready":
        finishStartup()?.resolve();
        updateRef();
        break;
      case "failed":
        finishStartup()?.reject(fromWireError(reply.error));
        break;
      case "applied": {
        transactions++;
        for (const ms of reply.purgeDelaysMs ?? []) {
          if (ms <= 0) continue;
          purgeDelayedCommits++;
          longestPurgeDelayMs = Math.max(longestPurgeDelayMs, ms);
          if (ms > 10) purgeDelaysOver10Ms++;
        }
        const answered = pending.splice(0, reply.results.length);
        answered.forEach((request, i) => {
          const result = reply.results[i];
          batches++;
          if (result === undefined) request.reject(storeFailure("the SQLite writer gave no answer"));
          else if (result.ok) request.resolve();
          else request.reject(fromWireError(result.error));
        });
        updateRef();
        break;
      }
      case "purged": {
        const request = purging.shift();
        if (reply.result.ok) {
          events.onPurged?.(reply.result.purged, reply.result.run);
          request?.resolve(reply.result.purged);
        } else request?.reject(fromWireError(reply.result.error));
        updateRef();
        break;
      }
      case "wrote":
        purgeSteps++;
        purgeRows += reply.rows;
        purgeStepMs += reply.ms;
        longestPurgeStepMs = Math.max(longestPurgeStepMs, reply.ms);
        if (reply.ms > 10) purgeStepsOver10Ms++;
        events.onPurgeRows?.(reply.rows);
        break;
      case "closed":
        onClosed?.();
        break;
      case "migrating":
        events.onMigrating?.(reply.progress);
        break;
    }
  });
  worker.on("error", (error) => {
    threadError = error;
  });
  worker.on("exit", (exitCode) => {
    stopped = closeRequested
      ? storeClosed("sqlite")
      : storeFailure(`the SQLite writer thread stopped (exit code ${exitCode})`, threadError);
    finishStartup()?.reject(stopped);
    for (const request of pending.splice(0)) request.reject(stopped);
    for (const request of purging.splice(0)) request.reject(stopped);
    onClosed?.();
  });

  // Requests made in the same turn of the event loop travel to the writer as one message:
  // a postMessage costs more than cloning a small batch, and every call makes two commits.
  type Outgoing =
    | { request: WriterRequest; entry: Pending<void>; isCommit: true }
    | { request: WriterRequest; entry: Pending<PurgeCounts>; isCommit: false };
  let outgoing: Outgoing[] = [];
  let flushScheduled = false;

  const flush = (): void => {
    flushScheduled = false;
    const sending = outgoing;
    outgoing = [];
    if (sending.length === 0) return;
    if (stopped !== undefined) {
      for (const { entry } of sending) entry.reject(stopped);
      return;
    }
    try {
      const sentAtMs = performance.timeOrigin + performance.now();
      worker.postMessage(
        sending.map(({ request }) => (request.type === "commit" ? { ...request, sentAtMs } : request)),
      );
      messagesSent++;
    } catch (error) {
      const failure = storeFailure("the batch cannot be sent to the SQLite writer", error);
      for (const { entry } of sending) entry.reject(failure);
      return;
    }
    for (const item of sending) {
      if (item.isCommit) pending.push(item.entry);
      else purging.push(item.entry);
    }
    updateRef();
  };

  const enqueue = (item: Outgoing): void => {
    if (stopped !== undefined) {
      item.entry.reject(stopped);
      return;
    }
    outgoing.push(item);
    if (!flushScheduled) {
      flushScheduled = true;
      setImmediate(flush);
    }
  };

  const writer: SqliteWriter = {
    async commit(batch) {
      // Copied now, cloned to the writer later in the turn: callers may reuse their objects at once.
      // Stamped when it is posted (flush).
      const request: WriterRequest = { type: "commit", batch: copyBatch(batch), sentAtMs: 0 };
      await new Promise<void>((resolve, reject) =>
        enqueue({ request, entry: { resolve, reject }, isCommit: true }),
      );
    },

    purge(endedBeforeMs, idempotencyBeforeMs) {
      const request: WriterRequest = { type: "purge", endedBeforeMs, idempotencyBeforeMs };
      return new Promise((resolve, reject) =>
        enqueue({ request, entry: { resolve, reject }, isCommit: false }),
      );
    },

    stats: () => ({
      batches,
      transactions,
      messagesSent,
      messagesReceived,
      purgeSteps,
      purgeRows,
      purgeStepMs,
      longestPurgeStepMs,
      purgeStepsOver10Ms,
      purgeDelayedCommits,
      longestPurgeDelayMs,
      purgeDelaysOver10Ms,
    }),

    close() {
      closeRequested = true;
      closing ??= (async () => {
        updateRef();
        if (stopped === undefined) {
          const closed = new Promise<void>((resolve) => {
            onClosed = resolve;
          });
          flush();
          worker.postMessage([{ type: "close" }] satisfies WriterRequest[]);
          await closed;
        }
        await worker.terminate();
      })();
      return closing;
    },
  };

  return new Promise((resolve, reject) => {
    startup = {
      resolve: () => resolve(writer),
      reject: (error) => {
        reject(error);
        void worker.terminate();
      },
    };
  });
}
