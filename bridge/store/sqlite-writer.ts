import { parentPort, workerData } from "node:worker_threads";
import { createGroupApplier } from "./sqlite-apply.js";
import { openWriterConnection } from "./sqlite-connection.js";
import type { WriterOptions, WriterReply, WriterRequest } from "./sqlite-protocol.js";
import { toWireError } from "./sqlite-protocol.js";
import { migrate } from "./sqlite-schema.js";

/**
 * Entry of the SQLite writer thread (started by sqlite-writer-client.ts). It owns the only
 * writing connection. Requests that arrive while a transaction is being made durable
 * queue up in the port; the next turn takes all of them into one transaction (group
 * commit, S9) and answers them in order.
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
  try {
    migrate(db);
    applier = createGroupApplier(db);
  } catch (error) {
    db.close();
    send({ type: "failed", error: toWireError(error, `cannot prepare the schema of ${options.path}`) });
    port.close();
    return;
  }

  let queue: WriterRequest[] = [];
  let scheduled = false;

  const flush = (): void => {
    scheduled = false;
    const requests = queue;
    queue = [];
    // `close` is always last: the store sends it once nothing else is pending.
    const closeAt = requests.findIndex((request) => request.type === "close");
    const group = (closeAt < 0 ? requests : requests.slice(0, closeAt)) as Exclude<
      WriterRequest,
      { type: "close" }
    >[];
    if (group.length > 0) send({ type: "applied", results: applier.apply(group) });
    if (closeAt >= 0) {
      db.close();
      send({ type: "closed" });
      port.close();
    }
  };

  // The store sends the requests of one turn of its event loop together.
  port.on("message", (requests: readonly WriterRequest[]) => {
    queue.push(...requests);
    // Node delivers every message already waiting before it runs immediates, so by the
    // time flush runs the queue holds everything that arrived during the last fsync.
    if (!scheduled) {
      scheduled = true;
      setImmediate(flush);
    }
  });
  send({ type: "ready" });
}

if (parentPort !== null) main(parentPort, workerData as WriterOptions);
