import path from "node:path";
import { resultsDir } from "./bench-paths.js";
import { type Server, startBridge } from "./bench-processes.js";
import type { BenchSettings } from "./bench-settings.js";
import type { GeneratorJob, LoadResult, OpenResult } from "./load-plan.js";
import { type MachineLoad, measureJob, type ProcessFigures } from "./measure-job.js";

export type PathKind = "direct" | "bridged-memory" | "bridged-sqlite";
export type ModeKind = "fixed" | "unthrottled";

export const PATHS: readonly PathKind[] = ["direct", "bridged-memory", "bridged-sqlite"];
export const MODES: readonly ModeKind[] = ["fixed", "unthrottled"];

export interface ScenarioResult {
  readonly id: string;
  readonly path: PathKind;
  readonly mode: ModeKind;
  readonly sessions: number;
  readonly connections: number;
  readonly open: OpenResult | undefined;
  readonly load: LoadResult;
  /** Undefined on the direct path. */
  readonly bridge: ProcessFigures | undefined;
  readonly echo: ProcessFigures;
  readonly generator: ProcessFigures;
  /** How busy the whole machine was in the window, and how much of that was other work. */
  readonly machine: MachineLoad | undefined;
}

export const scenarioId = (p: PathKind, mode: ModeKind): string => `${p}/${mode}`;

/** Where --cpu-prof writes (a .tmp directory: ignored by git). */
export const profileDir = (): string => path.join(resultsDir(), "profile.tmp");

/**
 * One load scenario: a fresh bridge (for the bridged paths) so no scenario inherits
 * another's sessions or journal, `sessions` sessions opened first, then the measured load.
 */
export async function runScenario(
  echo: Server,
  p: PathKind,
  mode: ModeKind,
  settings: BenchSettings,
): Promise<ScenarioResult> {
  const id = scenarioId(p, mode);
  const bridge =
    p === "direct"
      ? undefined
      : await startBridge(echo, p === "bridged-memory" ? "memory" : "sqlite", {
          ...(settings.cpuProfile === id ? { cpuProfileDir: profileDir() } : {}),
        });
  try {
    const keys = { prefix: "s", from: 0, count: settings.sessions };
    const job: GeneratorJob = {
      target: bridge?.address ?? echo.address,
      connections: settings.connections,
      open: { keys, concurrency: Math.min(settings.sessions, 16) },
      load: {
        shape:
          mode === "fixed"
            ? { mode: "fixed", ratePerSec: settings.ratePerSec, maxInFlight: settings.maxInFlight }
            : { mode: "closed", streamsPerConnection: settings.streamsPerConnection },
        keys,
        payloadBytes: settings.payloadBytes,
        warmupMs: settings.warmupSeconds * 1000,
        measureMs: settings.measureSeconds * 1000,
      },
    };
    const watch: Record<string, number> = { echo: echo.pid };
    if (bridge !== undefined) watch.bridge = bridge.pid;
    const { result, processes, machine } = await measureJob(
      job,
      watch,
      bridge === undefined ? [] : ["bridge"],
    );
    if (result.load === undefined) throw new Error(`${id}: the generator returned no load result`);
    return {
      id,
      path: p,
      mode,
      sessions: settings.sessions,
      connections: settings.connections,
      open: result.open,
      load: result.load,
      bridge: processes.bridge,
      echo: processes.echo as ProcessFigures,
      generator: processes.generator as ProcessFigures,
      machine,
    };
  } finally {
    await bridge?.stop();
  }
}

/** Why a scenario does not count: more than 0.1% errors, or a fixed rate not reached. */
export function scenarioProblems(result: ScenarioResult): string[] {
  const problems: string[] = [];
  const { load, open } = result;
  const calls = load.ok + load.errors;
  if (calls === 0) problems.push(`${result.id}: no calls completed`);
  else if (load.errors / calls > 0.001) {
    problems.push(
      `${result.id}: ${load.errors} errors in ${calls} calls (> 0.1%): ${load.errorSamples.join("; ")}`,
    );
  }
  if (open !== undefined && open.errors > 0) {
    problems.push(
      `${result.id}: ${open.errors} of ${open.count} Open calls failed: ${open.errorSamples.join("; ")}`,
    );
  }
  if (load.targetRatePerSec !== undefined) {
    if (load.throughputPerSec < load.targetRatePerSec * 0.97 || load.unsent > 0) {
      problems.push(
        `${result.id}: did not reach its fixed rate: ${load.throughputPerSec.toFixed(0)} of ${load.targetRatePerSec} req/s` +
          (load.unsent > 0 ? `, ${load.unsent} scheduled calls never sent` : ""),
      );
    }
  }
  return problems;
}
