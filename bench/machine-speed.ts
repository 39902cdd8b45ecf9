import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { benchModule } from "./bench-paths.js";
import type { SpeedSample } from "./drift.js";

const run = promisify(execFile);

/**
 * Runs the speed probe (speed-probe.ts) in a fresh process, so that nothing the bench
 * process holds (the routing measurement's heap, its collections) weighs on it. About
 * 0.7 s of CPU.
 */
export async function probeSpeed(before: string, runStartedAtMs: number): Promise<SpeedSample> {
  const atSeconds = (performance.now() - runStartedAtMs) / 1000;
  const { stdout } = await run(process.execPath, [benchModule("speed-probe.js")], {
    timeout: 60_000,
    maxBuffer: 64 * 1024,
  });
  const parsed = JSON.parse(stdout) as Record<string, unknown>;
  const ms = (name: string): number => {
    const value = parsed[name];
    if (typeof value !== "number" || !(value > 0))
      throw new Error(`speed probe: no ${name} in ${stdout.trim()}`);
    return value;
  };
  return {
    atSeconds,
    before,
    computeMs: ms("computeMs"),
    memoryMs: ms("memoryMs"),
    kernelMs: ms("kernelMs"),
  };
}
