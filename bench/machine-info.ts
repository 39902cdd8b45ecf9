import os from "node:os";
import { bridgeNodeVersion } from "./bench-processes.js";
import { verifyClockTicks } from "./proc-stats.js";

export interface MachineInfo {
  readonly cpuModel: string;
  readonly cores: number;
  readonly memoryBytes: number;
  readonly platform: string;
  readonly kernel: string;
  readonly node: string;
  /** The Node the bridge children run on: `node` unless BENCH_BRIDGE_NODE names another. */
  readonly bridgeNode: string;
  readonly date: string;
  /** /proc tick rate and its check against Node's own CPU accounting (≈ 1 when right). */
  readonly clockTicks: { readonly ticksPerSec: number; readonly procOverNode: number };
  /** 1-minute load average when the run started: other work on the machine skews everything. */
  readonly loadAverageAtStart: number;
}

export function machineInfo(): MachineInfo {
  const cpus = os.cpus();
  return {
    cpuModel: cpus[0]?.model.trim() ?? "unknown",
    cores: cpus.length,
    memoryBytes: os.totalmem(),
    platform: `${os.platform()} ${os.arch()}`,
    kernel: os.release(),
    node: process.version,
    bridgeNode: bridgeNodeVersion(),
    date: new Date().toISOString(),
    clockTicks: verifyClockTicks(),
    loadAverageAtStart: Math.round((os.loadavg()[0] ?? 0) * 100) / 100,
  };
}
