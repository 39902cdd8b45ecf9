import { readdirSync, readFileSync } from "node:fs";
import { clockTicks } from "./proc-stats.js";

/** One thread's CPU and wake-ups so far (/proc/<pid>/task/<tid>/stat and status). */
export interface ThreadSample {
  readonly userS: number;
  readonly systemS: number;
  /** Times the thread blocked and was woken (a futex wait, an fsync, an empty epoll). */
  readonly wakeups: number;
}

const TICKS = clockTicks();

/** Every thread of a process now, by thread id; threads gone since are simply absent. */
export function sampleThreads(pid: number | "self" = "self"): Map<number, ThreadSample> {
  const out = new Map<number, ThreadSample>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, "utf8");
      const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      const status = readFileSync(`/proc/${pid}/task/${tid}/status`, "utf8");
      const voluntary = Number(/^voluntary_ctxt_switches:\s+(\d+)/m.exec(status)?.[1] ?? 0);
      out.set(Number(tid), {
        userS: Number(fields[11]) / TICKS,
        systemS: Number(fields[12]) / TICKS,
        wakeups: voluntary,
      });
    } catch {
      // The thread ended between the listing and the read.
    }
  }
  return out;
}

/** What one group of threads did between two samples. */
export interface ThreadDelta {
  readonly userS: number;
  readonly systemS: number;
  readonly wakeups: number;
}

/**
 * CPU and wake-ups between two samples, added up per group: `groupOf` names the group of
 * a thread id (main, writer, …). A thread that appeared after `before` counts from zero.
 */
export function threadDeltas(
  before: ReadonlyMap<number, ThreadSample>,
  after: ReadonlyMap<number, ThreadSample>,
  groupOf: (tid: number) => string,
): Map<string, ThreadDelta> {
  const out = new Map<string, ThreadDelta>();
  for (const [tid, end] of after) {
    const start = before.get(tid) ?? { userS: 0, systemS: 0, wakeups: 0 };
    const group = groupOf(tid);
    const sum = out.get(group) ?? { userS: 0, systemS: 0, wakeups: 0 };
    out.set(group, {
      userS: sum.userS + end.userS - start.userS,
      systemS: sum.systemS + end.systemS - start.systemS,
      wakeups: sum.wakeups + end.wakeups - start.wakeups,
    });
  }
  return out;
}
