import { benchModule } from "./bench-paths.js";
import { forkTracked } from "./children.js";
import type { GeneratorJob, GeneratorMessage, GeneratorResult } from "./load-plan.js";
import type { WindowHooks } from "./load-window.js";

export interface GeneratorRun {
  readonly pid: number;
  readonly result: Promise<GeneratorResult>;
}

/**
 * Runs one job in a fresh load generator child. A fresh child per job gives every
 * scenario the same cold start (its warm-up covers JIT), and its pid lets the bench
 * report the generator's own CPU.
 */
export function runGenerator(job: GeneratorJob, hooks: Partial<WindowHooks> = {}): GeneratorRun {
  const { child, stderrTail } = forkTracked("generator", benchModule("load-generator.js"));
  const pid = child.pid;
  if (pid === undefined) throw new Error("load generator failed to start");
  const result = new Promise<GeneratorResult>((resolve, reject) => {
    let settled = false;
    child.on("message", (message: GeneratorMessage) => {
      switch (message.type) {
        case "measure-start":
          hooks.onMeasureStart?.();
          break;
        case "measure-end":
          hooks.onMeasureEnd?.();
          break;
        case "result":
          settled = true;
          resolve(message.result);
          child.disconnect();
          break;
        case "failed":
          settled = true;
          reject(new Error(`load generator: ${message.message}\n${stderrTail()}`));
          child.disconnect();
          break;
      }
    });
    child.once("exit", (code) => {
      if (!settled) reject(new Error(`load generator exited (${code}) without a result\n${stderrTail()}`));
    });
  });
  child.send(job);
  return { pid, result };
}
