/**
 * The load generator, run as its own child process (forked by generator-runner.ts) so that
 * its CPU never counts against the processes being measured. It takes one job over IPC,
 * reports the window's start and end as they happen (the bench samples CPU at those
 * instants) and sends its result back.
 */
import { writeFileSync } from "node:fs";
import { CallLog } from "./call-log.js";
import { runClosedLoop } from "./closed-loop.js";
import { connectConnectPool } from "./connect-client.js";
import { runFixedRate } from "./fixed-rate.js";
import { connectPool } from "./h2-client.js";
import type { GeneratorJob, GeneratorMessage, GeneratorResult, LoadResult } from "./load-plan.js";
import type { WindowHooks } from "./load-window.js";
import { openSessions } from "./open-sessions.js";
import { monotonicMs, PauseLog } from "./pause-log.js";

function post(message: GeneratorMessage): void {
  process.send?.(message);
}

async function run(job: GeneratorJob): Promise<GeneratorResult> {
  const pool =
    job.protocol === "connect-json" || job.protocol === "connect-proto"
      ? await connectConnectPool(
          job.target,
          job.connections,
          job.protocol === "connect-json" ? "json" : "proto",
        )
      : await connectPool(job.target, job.connections);
  try {
    const open = job.open === undefined ? undefined : await openSessions(pool, job.open);
    let load: LoadResult | undefined;
    if (job.load !== undefined) {
      const { shape, traceFile } = job.load;
      // BENCH_TRACE: every call's times and the generator's own pauses, to match slow calls
      // with the bridge's (stall-match.ts); room for the window's calls and a drain's worth.
      const tracing = traceFile !== undefined && shape.mode === "fixed";
      const calls = tracing
        ? new CallLog(Math.ceil((job.load.measureMs / 1000 + 5) * shape.ratePerSec))
        : undefined;
      const pauses = tracing ? new PauseLog() : undefined;
      let windowStartMs = 0;
      const hooks: WindowHooks = {
        onMeasureStart: () => {
          windowStartMs = monotonicMs();
          post({ type: "measure-start" });
        },
        onMeasureEnd: () => post({ type: "measure-end" }),
      };
      load =
        shape.mode === "fixed"
          ? await runFixedRate(pool, job.load, shape, hooks, calls)
          : await runClosedLoop(pool, job.load, shape, hooks);
      if (traceFile !== undefined && calls !== undefined && pauses !== undefined) {
        pauses.stop();
        writeFileSync(
          traceFile,
          JSON.stringify({ calls: calls.trace(), generator: pauses.since(windowStartMs) }),
        );
      }
    }
    return { open, load };
  } finally {
    await pool.close();
  }
}

// The bench going away (even killed) closes the channel: never outlive it.
process.on("disconnect", () => process.exit(0));
process.once("message", (job: GeneratorJob) => {
  run(job).then(
    (result) => post({ type: "result", result }),
    (error: unknown) =>
      post({ type: "failed", message: error instanceof Error ? error.message : String(error) }),
  );
});
