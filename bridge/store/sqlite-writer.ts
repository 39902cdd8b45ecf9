import { parentPort, workerData } from "node:worker_threads";
import { type CommitRequest, createGroupApplier } from "./sqlite-apply.js";
import { openWriterConnection } from "./sqlite-connection.js";
import type { WriterOptions, WriterReply, WriterRequest } from "./sqlite-protocol.js";
import { toWireError } from "./sqlite-protocol.js";
import { createPurger, type PurgeJob } from "./sqlite-purge.js";
import { migrate } from "./sqlite-schema.js";
import { storeClosed } from "./store-errors.js";

/** How far apart purge steps run when no commits come to carry them. */
const PURGE_IDLE_STEP_MS = 2;

/**
 * Entry of the SQLite writer thread (started by sqlite-writer-client.ts). It owns the only
 * writing connection. Requests that arrive while a transaction is being made durable
 * queue up in the port; the next turn takes all of them into one transaction (group
 * commit, S9) and answers them in order. A purge runs as a series of short steps, one
 * per turn after that turn's commits, so commits never wait behind a whole purge.
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
    migrate(db);
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
  const purges: { job: PurgeJob | undefined; endedBeforeMs: number; idempotencyBeforeMs: number }[] = [];

  const schedule = (): void => {
    if (scheduled) return;
    scheduled = true;
    // Node delivers every message already waiting before it runs immediates, so by the
    // time flush runs the queue holds everything that arrived during the last fsync.
    setImmediate(flush);
  };

  let idleStep: ReturnType<typeof setTimeout> | undefined;

  /**
   * One bounded step of the oldest purge, inside the transaction of a group of commits
   * (`within`) or alone; answers the purge when it is done or has failed.
   */
  const purgeStep = (within: boolean): void => {
    const current = purges[0];
    if (current === undefined) return;
    try {
      const started = performance.now();
      current.job ??= purger.start(current.endedBeforeMs, current.idempotencyBeforeMs);
      const { deletedRows, done: purged } = within ? current.job.stepWithin() : current.job.step();
      if (deletedRows > 0) send({ type: "wrote", rows: deletedRows, ms: performance.now() - started });
      if (purged === undefined) return;
      purges.shift();
      send({ type: "purged", result: { ok: true, purged } });
    } catch (error) {
      purges.shift();
      send({ type: "purged", result: { ok: false, error: toWireError(error, "the purge stopped") } });
    }
  };

  const flush = (): void => {
    scheduled = false;
    const requests = queue;
    queue = [];
    const group: CommitRequest[] = [];
    let close = false;
    for (const request of requests) {
      if (request.type === "commit") group.push(request);
      else if (request.type === "purge") purges.push({ ...request, job: undefined });
      // `close` is always last: the store sends it once nothing else is pending.
      else close = true;
    }
    if (group.length > 0) {
      // A purge step rides along in the group's transaction: commits wait for no
      // transaction of the purge's, only for its few rows.
      const purging = purges[0];
      const { results, committed } = applier.apply(
        group,
        purging === undefined ? undefined : () => purgeStep(true),
      );
      send({ type: "applied", results });
      if (!committed && purging !== undefined && purges[0] === purging) {
        // What the step deleted was rolled back with the group; its counts are wrong now.
        purges.shift();
        const first = results[0];
        const error =
          first !== undefined && !first.ok ? first.error : toWireError(undefined, "the purge stopped");
        send({ type: "purged", result: { ok: false, error } });
      }
    }
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
    if (group.length === 0) purgeStep(false);
    // With no commits coming, steps run on their own, a little apart, so a commit that
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

if (parentPort !== null) main(parentPort, workerData as WriterOptions);
