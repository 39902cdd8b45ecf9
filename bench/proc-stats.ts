import { execFileSync } from "node:child_process";
import { readFileSync } from "node:fs";

/** Clock ticks per second of /proc/<pid>/stat times: getconf CLK_TCK, else Linux's usual 100. */
export function clockTicks(): number {
  try {
    const ticks = Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }).trim());
    if (Number.isInteger(ticks) && ticks > 0) return ticks;
  } catch {
    // getconf missing: fall through to the default, which verifyClockTicks checks.
  }
  return 100;
}

const TICKS = clockTicks();

/** User + system CPU seconds a process has used so far (/proc/<pid>/stat utime + stime). */
export function cpuSeconds(pid: number | "self"): number {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // The command name (field 2) may hold spaces and parentheses: count fields after the last ')'.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // Fields 14 and 15 of the full line are 12 and 13 after "pid (comm) ".
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

/**
 * CPU time of the whole machine so far (/proc/stat), in seconds: busy (user, nice, system,
 * irq, softirq) and steal (taken by the hypervisor). Compared with what the bench's own
 * processes used, it shows how much other work shared the machine during a window.
 */
export function machineCpuSeconds(): { busy: number; steal: number } {
  const line = readFileSync("/proc/stat", "utf8").split("\n", 1)[0] ?? "";
  const [user, nice, system, , , irq, softirq, steal] = line.trim().split(/\s+/).slice(1).map(Number);
  const ticks = (value: number | undefined): number => (value ?? 0) / TICKS;
  return {
    busy: ticks(user) + ticks(nice) + ticks(system) + ticks(irq) + ticks(softirq),
    steal: ticks(steal),
  };
}

/** Resident set size now and its peak over the process's life, in bytes (/proc/<pid>/status). */
export function memory(pid: number): { rssBytes: number; peakRssBytes: number } {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const kb = (name: string): number =>
    Number(new RegExp(`^${name}:\\s+(\\d+) kB`, "m").exec(status)?.[1] ?? 0);
  return { rssBytes: kb("VmRSS") * 1024, peakRssBytes: kb("VmHWM") * 1024 };
}

/**
 * Bytes a process (all its threads) has caused to be written to storage so far
 * (/proc/<pid>/io write_bytes); undefined where /proc does not say.
 */
export function writtenBytes(pid: number): number | undefined {
  try {
    const io = readFileSync(`/proc/${pid}/io`, "utf8");
    const match = /^write_bytes:\s+(\d+)/m.exec(io);
    return match === null ? undefined : Number(match[1]);
  } catch {
    return undefined;
  }
}

/** Keeps the busy loop below from being optimised away. */
let sink = 0;

/**
 * Checks the tick rate against Node's own accounting: burns some CPU and compares the
 * /proc delta with process.cpuUsage(). Returns /proc ÷ Node, which should be close to 1.
 */
export function verifyClockTicks(): { ticksPerSec: number; procOverNode: number } {
  const procBefore = cpuSeconds("self");
  const nodeBefore = process.cpuUsage();
  const until = performance.now() + 300;
  while (performance.now() < until) sink += Math.sqrt(sink + 1);
  const node = process.cpuUsage(nodeBefore);
  const proc = cpuSeconds("self") - procBefore;
  const nodeSeconds = (node.user + node.system) / 1e6;
  return { ticksPerSec: TICKS, procOverNode: Math.round((proc / nodeSeconds) * 1000) / 1000 };
}

/** Samples a process's RSS every `everyMs` and keeps the highest value seen. */
export class RssSampler {
  readonly #pid: number;
  readonly #timer: NodeJS.Timeout;
  peakBytes = 0;

  constructor(pid: number, everyMs = 200) {
    this.#pid = pid;
    this.sample();
    this.#timer = setInterval(() => this.sample(), everyMs);
  }

  sample(): number {
    let rssBytes = 0;
    try {
      rssBytes = memory(this.#pid).rssBytes;
    } catch {
      // The process has exited; its last sample stands.
    }
    if (rssBytes > this.peakBytes) this.peakBytes = rssBytes;
    return rssBytes;
  }

  stop(): number {
    clearInterval(this.#timer);
    return this.sample();
  }
}
