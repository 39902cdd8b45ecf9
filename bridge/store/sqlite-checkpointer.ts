import { parentPort, workerData } from "node:worker_threads";
import Database from "better-sqlite3";

/** What the checkpointer thread needs (started by sqlite-checkpointer-client.ts). */
export interface CheckpointerOptions {
  readonly path: string;
  readonly busyTimeoutMs: number;
}

/** Messages to the checkpointer thread. */
export type CheckpointerRequest = "checkpoint" | "close";

/** Messages from it: ready, failed to open, checkpointed (frames copied), closed. */
export type CheckpointerReply =
  | { readonly type: "ready" }
  | { readonly type: "failed"; readonly message: string }
  | { readonly type: "checkpointed"; readonly frames: number }
  | { readonly type: "closed" };

/**
 * Entry of the checkpointer thread: copies the WAL into the database with its own
 * connection, so no commit waits for a checkpoint. A PASSIVE checkpoint takes no write
 * lock: the writer keeps committing (and fsyncing, S9) while pages are copied. Requests
 * that arrive during a checkpoint are merged into the next one.
 */
function main(port: NonNullable<typeof parentPort>, options: CheckpointerOptions): void {
  let db: Database.Database;
  try {
    db = new Database(options.path, { fileMustExist: true });
    db.pragma(`busy_timeout = ${options.busyTimeoutMs}`);
    // Only the writer checkpoints on its own, and only if this thread falls far behind.
    db.pragma("wal_autocheckpoint = 0");
  } catch (error) {
    port.postMessage({ type: "failed", message: error instanceof Error ? error.message : String(error) });
    port.close();
    return;
  }
  let requested = false;
  let scheduled = false;

  const run = (): void => {
    scheduled = false;
    if (!requested) return;
    requested = false;
    let frames = 0;
    try {
      const [result] = db.pragma("wal_checkpoint(PASSIVE)") as { checkpointed: number }[];
      frames = Math.max(0, result?.checkpointed ?? 0);
    } catch {
      // Busy or failed: the next request tries again, and the writer's own checkpoint
      // bounds the WAL if this thread cannot keep up.
    }
    port.postMessage({ type: "checkpointed", frames } satisfies CheckpointerReply);
  };

  port.on("message", (request: CheckpointerRequest) => {
    if (request === "close") {
      db.close();
      port.postMessage({ type: "closed" } satisfies CheckpointerReply);
      port.close();
      return;
    }
    requested = true;
    if (!scheduled) {
      scheduled = true;
      setImmediate(run);
    }
  });
  port.postMessage({ type: "ready" } satisfies CheckpointerReply);
}

if (parentPort !== null) main(parentPort, workerData as CheckpointerOptions);
