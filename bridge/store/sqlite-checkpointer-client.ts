import { Worker } from "node:worker_threads";
import type { CheckpointerOptions, CheckpointerReply, CheckpointerRequest } from "./sqlite-checkpointer.js";
import { storeFailure } from "./store-errors.js";

/** The main thread's handle on the checkpointer thread (sqlite-checkpointer.ts). */
export interface SqliteCheckpointer {
  /** Asks for a checkpoint; requests made while one runs are merged. Never waits. */
  request(): void;
  /** Checkpoints run so far, for tests and diagnostics. */
  checkpoints(): number;
  /** Stops the thread; idempotent. */
  close(): Promise<void>;
}

/** Starts the checkpointer; resolves once its connection is open. */
export function startSqliteCheckpointer(options: CheckpointerOptions): Promise<SqliteCheckpointer> {
  const worker = new Worker(new URL("./sqlite-checkpointer.js", import.meta.url), { workerData: options });
  // Checkpoints are housekeeping: they never keep the process alive.
  worker.unref();
  let done = 0;
  let stopped = false;
  let closing: Promise<void> | undefined;

  return new Promise((resolve, reject) => {
    worker.on("message", (reply: CheckpointerReply) => {
      if (reply.type === "ready") resolve(checkpointer);
      else if (reply.type === "failed")
        reject(storeFailure(`cannot open ${options.path} to checkpoint: ${reply.message}`));
      else if (reply.type === "checkpointed") done++;
    });
    worker.on("error", (error) => reject(storeFailure("the SQLite checkpointer thread failed", error)));
    worker.on("exit", () => {
      stopped = true;
      reject(storeFailure("the SQLite checkpointer thread stopped"));
    });

    const checkpointer: SqliteCheckpointer = {
      request() {
        if (!stopped && closing === undefined) worker.postMessage("checkpoint" satisfies CheckpointerRequest);
      },
      checkpoints: () => done,
      close() {
        closing ??= (async () => {
          if (!stopped) {
            const closed = new Promise<void>((resolveClosed) => {
              worker.on("message", (reply: CheckpointerReply) => {
                if (reply.type === "closed") resolveClosed();
              });
              worker.once("exit", () => resolveClosed());
            });
            worker.postMessage("close" satisfies CheckpointerRequest);
            await closed;
          }
          await worker.terminate();
        })();
        return closing;
      },
    };
  });
}
