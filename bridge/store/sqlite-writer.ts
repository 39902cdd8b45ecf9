import { parentPort, workerData } from "node:worker_threads";
import { type CommitRequest, createGroupApplier } from "./sqlite-apply.js";
import { openWriterConnection } from "./sqlite-connection.js";
import type { WriterOptions, WriterReply, WriterRequest } from "./sqlite-protocol.js";
import { toWireError } from "./sqlite-protocol.js";
import { createPurger, type PurgeJob } from "./sqlite-purge.js";
import { migrate } from "./sqlite-schema.js";
import { storeClosed } from "./store-errors.js";

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
    purger = createPurger(db);
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

  /** One bounded step of the oldest purge; answers it when it is done or has failed. */
  const purgeStep = (): void => {
    const current = purges[0];
    if (current === undefined) return;
    try {
      current.job ??= purger.start(current.endedBeforeMs, current.idempotencyBeforeMs);
      const { deletedRows, done: purged } = current.job.step();
      if (deletedRows > 0) send({ type: "wrote", rows: deletedRows });
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
    if (group.length > 0) send({ type: "applied", results: applier.apply(group) });
    if (close) {
      // What a cut-short purge deleted stays deleted; the rest waits for the next purge.
      const error = toWireError(storeClosed("sqlite"), "the purge stopped");
      for (const _ of purges.splice(0)) send({ type: "purged", result: { ok: false, error } });
      db.close();
      send({ type: "closed" });
      port.close();
      return;
    }
    purgeStep();
    // More purge steps come after the commits that arrive meanwhile.
    if (purges.length > 0) schedule();
  };

  // The store sends the requests of one turn of its event loop together.
  port.on("message", (requests: readonly WriterRequest[]) => {
    queue.push(...requests);
    schedule();
  });
  send({ type: "ready" });
}

if (parentPort !== null) main(parentPort, workerData as WriterOptions);
