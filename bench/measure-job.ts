import { runGenerator } from "./generator-runner.js";
import type { GeneratorJob, GeneratorResult } from "./load-plan.js";
import type { WindowHooks } from "./load-window.js";
import { cpuSeconds, machineCpuSeconds, RssSampler, writtenBytes } from "./proc-stats.js";

/** What one process used during a measured window. */
export interface ProcessFigures {
  readonly cpuSeconds: number;
  /** CPU seconds per wall second: cores kept busy. */
  readonly cpuCores: number;
  /** CPU seconds per 1000 successful calls (equals cores per 1000 req/s). */
  readonly cpuSecondsPer1000: number;
  /** Highest sampled RSS over the whole job (warm-up included) and RSS at the window's end. */
  readonly rssPeakBytes: number | undefined;
  readonly rssEndBytes: number | undefined;
  /** Bytes written to storage in the window (/proc/<pid>/io), and per successful call. */
  readonly writtenBytes: number | undefined;
  readonly writtenBytesPerCall: number | undefined;
}

/** The whole machine over the same window, in cores (CPU seconds per wall second). */
export interface MachineLoad {
  readonly busyCores: number;
  readonly stealCores: number;
  /** Busy cores not used by the bench's own processes: other work sharing the machine. */
  readonly otherCores: number;
}

export interface MeasuredJob {
  readonly result: GeneratorResult;
  /** By the names given in `watch`, plus "generator" and "bench" (this process). */
  readonly processes: Record<string, ProcessFigures>;
  readonly machine: MachineLoad | undefined;
}

/**
 * Runs a load job and accounts the CPU of the watched processes (and of the generator)
 * over exactly the generator's measured window, read from /proc at the instants the
 * generator reports. RSS is sampled for processes listed in `rss`.
 */
export async function measureJob(
  job: GeneratorJob,
  watch: Readonly<Record<string, number>>,
  rss: readonly string[] = [],
  hooks: Partial<WindowHooks> = {},
): Promise<MeasuredJob> {
  const samplers = new Map(rss.map((name) => [name, new RssSampler(watch[name] as number)]));
  const pids: Record<string, number> = { ...watch, bench: process.pid };
  const before: Record<string, number> = {};
  const after: Record<string, number> = {};
  const rssEnd: Record<string, number> = {};
  let machineBefore = { busy: 0, steal: 0 };
  let machineAfter = { busy: 0, steal: 0 };
  const writtenBefore: Record<string, number | undefined> = {};
  const writtenAfter: Record<string, number | undefined> = {};
  const snapshot = (into: Record<string, number>, written: Record<string, number | undefined>): void => {
    for (const [name, pid] of Object.entries(pids)) {
      into[name] = cpuSeconds(pid);
      written[name] = writtenBytes(pid);
    }
  };
  const run = runGenerator(job, {
    onMeasureStart: () => {
      machineBefore = machineCpuSeconds();
      snapshot(before, writtenBefore);
      hooks.onMeasureStart?.();
    },
    onMeasureEnd: () => {
      snapshot(after, writtenAfter);
      hooks.onMeasureEnd?.();
      machineAfter = machineCpuSeconds();
      for (const [name, sampler] of samplers) rssEnd[name] = sampler.sample();
    },
  });
  pids.generator = run.pid;
  try {
    const result = await run.result;
    const load = result.load;
    const processes: Record<string, ProcessFigures> = {};
    let machine: MachineLoad | undefined;
    if (load !== undefined) {
      const windowSeconds = load.windowMs / 1000;
      for (const name of Object.keys(pids)) {
        const used = (after[name] ?? 0) - (before[name] ?? 0);
        const wb = writtenBefore[name];
        const wa = writtenAfter[name];
        const written = wb === undefined || wa === undefined ? undefined : wa - wb;
        processes[name] = {
          cpuSeconds: used,
          cpuCores: used / windowSeconds,
          cpuSecondsPer1000: load.ok === 0 ? Number.NaN : used / (load.ok / 1000),
          rssPeakBytes: samplers.get(name)?.peakBytes,
          rssEndBytes: rssEnd[name],
          writtenBytes: written,
          writtenBytesPerCall: written === undefined || load.ok === 0 ? undefined : written / load.ok,
        };
      }
      const ours = Object.values(processes).reduce((sum, p) => sum + p.cpuSeconds, 0);
      const busy = machineAfter.busy - machineBefore.busy;
      machine = {
        busyCores: busy / windowSeconds,
        stealCores: (machineAfter.steal - machineBefore.steal) / windowSeconds,
        otherCores: Math.max(0, busy - ours) / windowSeconds,
      };
    }
    return { result, processes, machine };
  } finally {
    for (const sampler of samplers.values()) sampler.stop();
  }
}
