import { parentPort, receiveMessageOnPort, workerData } from "node:worker_threads";
import { type CommitRequest, createGroupApplier } from "./sqlite-apply.js";
import { openWriterConnection } from "./sqlite-connection.js";
import type { PurgeResult, PurgeRun, WriterOptions, WriterReply, WriterRequest } from "./sqlite-protocol.js";
import { toWireError } from "./sqlite-protocol.js";
import { createPurger, type PurgeJob } from "./sqlite-purge.js";
import { createPurgePace, type PurgePace } from "./sqlite-purge-pace.js";
import { migrate } from "./sqlite-schema.js";
import { storeClosed } from "./store-errors.js";

/** How often a long schema upgrade reports its progress. */
const MIGRATION_PROGRESS_EVERY_MS = 1_000;

/** How far apart purge steps run when no commits come. */
const PURGE_IDLE_STEP_MS = 2;
/**
 * Commits that keep the writer busy this long without a gap for a purge step take one
 * into their transaction, so a purge progresses under any load.
 */
const PURGE_STARVED_MS = 20;

/**
 * Entry of the SQLite writer thread (started by sqlite-writer-client.ts). It owns the only
 * writing connection. Requests that arrive while a transaction is being made durable
 * queue up in the port; the next turn takes all of them into one transaction (group
 * commit, S9) and answers them in order. A purge runs as a series of short steps, one
 * per turn, each sized to hold the writer a few milliseconds (sqlite-purge-pace.ts), so
 * a commit never waits behind more than one of them.
 */
function main(port: NonNullable<typeof parentPort>, options: WriterOptions): void {
  const send = (reply: WriterReply): void => port.postMessage(reply);
  let db: ReturnType<typeof openWriterConnection>;
  try {
    db = openWriterConnection(options.path, options.synchronous, options.busyTimeoutMs);
  } catch (error) {
    send({ type: "failed", error: toWireError(error, `cannot open ${options.path}`) });
    port.close();
    return;
  }
  let applier: ReturnType<typeof createGroupApplier>;
  let purger: ReturnType<typeof createPurger>;
  try {
    // A long upgrade says how it is getting on, about once a second.
    let lastProgressMs = Number.NEGATIVE_INFINITY;
    migrate(db, {
      onProgress: (progress) => {
        // A new database has nothing to move and nothing to say.
        if (progress.totalRows === 0) return;
        const at = performance.now();
        if (!progress.done && at - lastProgressMs < MIGRATION_PROGRESS_EVERY_MS) return;
        lastProgressMs = at;
        send({ type: "migrating", progress });
      },
    });
    applier = createGroupApplier(db);
    purger = createPurger(db, options.synchronous);
  } catch (error) {
    db.close();
    send({ type: "failed", error: toWireError(error, `cannot prepare the schema of ${options.path}`) });
    port.close();
    return;
  }

  let queue: WriterRequest[] = [];
  let scheduled = false;
  // Purges in the order they were asked for; the first one is in progress.
  const purges: PurgeInProgress[] = [];
  // When the last purge step ran (performance.timeOrigin + now(), as commits are stamped).
  let lastStep: { startedAtMs: number; endedAtMs: number } | undefined;
  // When the purge in progress last stepped (or began).
  let lastStepEndedAtMs = 0;

  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    // Node delivers every message already waiting before it runs immediates, so by the
    // time flush runs the queue holds everything that arrived during the last fsync.
    setImmediate(flush);
  };

  let idleStep: ReturnType<typeof setTimeout> | undefined;

  /**
   * One step of the oldest purge, sized by its pace, inside the transaction of a group of
   * commits (`within`) or alone. Returns the purge once it has finished or failed (the
   * caller answers it: within a group, only once the group has committed).
   */
  const purgeStep = (within: boolean): { purge: PurgeInProgress; result: PurgeResult } | undefined => {
    const current = purges[0];
    if (current === undefined) return undefined;
    const startedAtMs = now();
    try {
      current.job ??= purger.start(current.endedBeforeMs, current.idempotencyBeforeMs);
      const rows = current.pace.rows();
      const { deletedRows, done: purged } = within ? current.job.stepWithin(rows) : current.job.step(rows);
      const endedAtMs = now();
      const ms = endedAtMs - startedAtMs;
      lastStep = { startedAtMs, endedAtMs };
      lastStepEndedAtMs = endedAtMs;
      current.pace.observe(rows, deletedRows, ms);
      if (deletedRows > 0) {
        current.steps++;
        current.rows += deletedRows;
        current.stepMs += ms;
        current.longestStepMs = Math.max(current.longestStepMs, ms);
        send({ type: "wrote", rows: deletedRows, ms });
      }
      if (purged === undefined) return undefined;
      purges.shift();
      return { purge: current, result: { ok: true, purged, run: runOf(current) } };
    } catch (error) {
      lastStep = { startedAtMs, endedAtMs: now() };
      purges.shift();
      return { purge: current, result: { ok: false, error: toWireError(error, "the purge stopped") } };
    }
  };

  const flush = (): void => {
    scheduled = false;
    // What came while the last step or transaction ran, also when a timer (not a message)
    // started this turn: a purge step only runs when no commit is waiting.
    for (
      let waiting = receiveMessageOnPort(port);
      waiting !== undefined;
      waiting = receiveMessageOnPort(port)
    ) {
      queue.push(...(waiting.message as readonly WriterRequest[]));
    }
    const requests = queue;
    queue = [];
    const group: CommitRequest[] = [];
    let close = false;
    for (const request of requests) {
      if (request.type === "commit") group.push(request);
      else if (request.type === "purge") {
        if (purges.length === 0) lastStepEndedAtMs = now();
        purges.push(newPurge(request, options.purgeStepBudgetMs));
      }
      // `close` is always last: the store sends it once nothing else is pending.
      else close = true;
    }
    let finished: ReturnType<typeof purgeStep>;
    if (group.length > 0) {
      const step = lastStep;
      lastStep = undefined;
      // Purge steps run in the gaps between groups of commits (below), where only a commit
      // that arrives during one waits, for its rest. When commits leave no gap, a step
      // rides along in a group's transaction, so the purge goes on and costs no fsync of
      // its own. S9: a commit waits for one purge step at most, so a group with a commit
      // that arrived while a step ran (and has waited for it) carries none.
      const waited = step !== undefined && group.some((r) => r.sentAtMs < step.endedAtMs);
      const starved = now() - lastStepEndedAtMs > PURGE_STARVED_MS;
      const purging = waited || !starved ? undefined : purges[0];
      let alongsideMs = 0;
      const { results, committed } = applier.apply(
        group,
        purging === undefined
          ? undefined
          : () => {
              const startedAtMs = now();
              finished = purgeStep(true);
              alongsideMs = now() - startedAtMs;
            },
      );
      const delays =
        step === undefined && alongsideMs === 0
          ? undefined
          : group.map(
              (r) =>
                alongsideMs +
                (step === undefined || r.sentAtMs >= step.endedAtMs
                  ? 0
                  : step.endedAtMs - Math.max(r.sentAtMs, step.startedAtMs)),
            );
      send(
        delays === undefined
          ? { type: "applied", results }
          : { type: "applied", results, purgeDelaysMs: delays },
      );
      if (delays !== undefined) {
        const charged = finished?.purge ?? purges[0];
        if (charged !== undefined) {
          for (const ms of delays) {
            if (ms <= 0) continue;
            charged.delayedCommits++;
            charged.longestDelayMs = Math.max(charged.longestDelayMs, ms);
          }
          if (finished?.result.ok === true) finished.result = { ...finished.result, run: runOf(charged) };
        }
      }
      if (!committed && purging !== undefined) {
        // What the step deleted was rolled back with the group; its counts are wrong now.
        if (finished === undefined && purges[0] === purging) purges.shift();
        const first = results[0];
        const error =
          first !== undefined && !first.ok ? first.error : toWireError(undefined, "the purge stopped");
        finished = { purge: purging, result: { ok: false, error } };
      }
    }
    if (finished !== undefined) send({ type: "purged", result: finished.result });
    if (close) {
      if (idleStep !== undefined) clearTimeout(idleStep);
      // What a cut-short purge deleted stays deleted; the rest waits for the next purge.
      const error = toWireError(storeClosed("sqlite"), "the purge stopped");
      for (const _ of purges.splice(0)) send({ type: "purged", result: { ok: false, error } });
      db.close();
      send({ type: "closed" });
      port.close();
      return;
    }
    if (group.length === 0) {
      const alone = purgeStep(false);
      if (alone !== undefined) send({ type: "purged", result: alone.result });
    }
    // Steps run a little apart, leaving the core to others between them; a commit that
    // arrives finds at most one step ahead of it.
    if (purges.length > 0 && idleStep === undefined) {
      idleStep = setTimeout(() => {
        idleStep = undefined;
        schedule();
      }, PURGE_IDLE_STEP_MS);
    }
  };

  // The store sends the requests of one turn of its event loop together.
  port.on("message", (requests: readonly WriterRequest[]) => {
    queue.push(...requests);
    schedule();
  });
  send({ type: "ready" });
}

/** A purge being worked off, with its pace and what it has done so far. */
interface PurgeInProgress {
  job: PurgeJob | undefined;
  readonly endedBeforeMs: number;
  readonly idempotencyBeforeMs: number;
  readonly pace: PurgePace;
  steps: number;
  rows: number;
  stepMs: number;
  longestStepMs: number;
  delayedCommits: number;
  longestDelayMs: number;
}

function newPurge(request: Extract<WriterRequest, { type: "purge" }>, stepBudgetMs: number): PurgeInProgress {
  return {
    job: undefined,
    endedBeforeMs: request.endedBeforeMs,
    idempotencyBeforeMs: request.idempotencyBeforeMs,
    // Each purge starts small: the load may have changed since the last one.
    pace: createPurgePace(stepBudgetMs),
    steps: 0,
    rows: 0,
    stepMs: 0,
    longestStepMs: 0,
    delayedCommits: 0,
    longestDelayMs: 0,
  };
}

function runOf(purge: PurgeInProgress): PurgeRun {
  const { steps, rows, stepMs, longestStepMs, delayedCommits, longestDelayMs } = purge;
  return { steps, rows, stepMs, longestStepMs, delayedCommits, longestDelayMs };
}

/** A clock commits are stamped with in the store's thread and read here. */
const now = (): number => performance.timeOrigin + performance.now();

if (parentPort !== null) main(parentPort, workerData as WriterOptions);
