import { closeSync, openSync, readSync } from "node:fs";
import { PerformanceObserver, constants as perfConstants } from "node:perf_hooks";

/**
 * Milliseconds on the system's monotonic clock (CLOCK_MONOTONIC, what process.hrtime
 * reads), the same in every process on the machine: the bridge's pauses and the
 * generator's call times can be laid side by side. performance.now() counts from each
 * process's own start, so it is shifted once onto that clock.
 */
const shiftMs = Number(process.hrtime.bigint()) / 1e6 - performance.now();
export const monotonicMs = (performanceMs: number = performance.now()): number => performanceMs + shiftMs;

const GC_KINDS: Record<number, string> = {
  [perfConstants.NODE_PERFORMANCE_GC_MINOR]: "minor",
  [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: "major",
  [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
  [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb",
};

/** One collection's pause or one stall of the event loop, on the monotonic clock. */
export interface TimedPause {
  readonly startMs: number;
  readonly ms: number;
  /** GC pauses: minor, major, incremental, weakcb (perf_hooks' detail.kind). */
  readonly kind?: string;
  /**
   * Stalls: what the main thread did meanwhile, from /proc/self/task/<pid>/schedstat: ran
   * on a core (GC pauses included), or waited in the run queue for one (a busy machine).
   */
  readonly runMs?: number;
  readonly waitMs?: number;
}

export interface PauseTrace {
  readonly pid: number;
  /** performance.timeOrigin on the monotonic clock: V8's --trace-gc lines count from about there. */
  readonly originMs: number;
  /** Where the trace starts (the window's opening), monotonic ms. */
  readonly fromMs: number;
  readonly gc: readonly TimedPause[];
  /** Gaps between ticks of a 1 ms interval timer longer than the stall threshold. */
  readonly stalls: readonly TimedPause[];
  /** Entries not kept because the log was full. */
  readonly dropped: number;
}

/** Enough for an hour at 1000 req/s and more; past it entries are counted, not kept. */
const MAX_ENTRIES = 200_000;

/**
 * Every GC pause (perf_hooks) and every event-loop stall of this process, with start
 * times, so that slow calls can be matched to what the process was doing when they were
 * slow. Diagnostic only (BENCH_TRACE): the 1 ms timer it runs costs a wake-up and a read
 * of the main thread's schedstat per tick.
 */
export class PauseLog {
  readonly #gc: TimedPause[] = [];
  readonly #stalls: TimedPause[] = [];
  #dropped = 0;
  readonly #observer: PerformanceObserver;
  readonly #ticker: NodeJS.Timeout;
  readonly #sched: number | undefined;

  constructor(stallMs = 2) {
    this.#observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const detail = (entry as { detail?: { kind?: number } }).detail;
        this.#keep(this.#gc, {
          startMs: monotonicMs(entry.startTime),
          ms: entry.duration,
          kind: GC_KINDS[detail?.kind ?? 0] ?? "other",
        });
      }
    });
    this.#observer.observe({ entryTypes: ["gc"] });
    // A kernel without schedstats (or no /proc) leaves stalls without the split: NaN.
    let sched: number | undefined;
    try {
      sched = openSync(`/proc/self/task/${process.pid}/schedstat`, "r");
    } catch {
      sched = undefined;
    }
    this.#sched = sched;
    const buffer = Buffer.alloc(128);
    // "<ns on a core> <ns waiting in the run queue> <timeslices>" of the main thread.
    const read = (): [number, number] => {
      if (sched === undefined) return [Number.NaN, Number.NaN];
      const text = buffer.toString("latin1", 0, readSync(sched, buffer, 0, buffer.length, 0));
      const [run = "0", wait = "0"] = text.split(" ");
      return [Number(run) / 1e6, Number(wait) / 1e6];
    };
    let last = performance.now();
    let [lastRun, lastWait] = read();
    this.#ticker = setInterval(() => {
      const now = performance.now();
      const [run, wait] = read();
      // A tick is due 1 ms after the last; what it came later than that, the loop was held up.
      if (now - last > stallMs + 1) {
        this.#keep(this.#stalls, {
          startMs: monotonicMs(last),
          ms: now - last,
          runMs: run - lastRun,
          waitMs: wait - lastWait,
        });
      }
      last = now;
      lastRun = run;
      lastWait = wait;
    }, 1);
    this.#ticker.unref();
  }

  #keep(list: TimedPause[], pause: TimedPause): void {
    if (list.length >= MAX_ENTRIES) this.#dropped += 1;
    else list.push(pause);
  }

  /** What was logged from `fromMs` (monotonic) on. */
  since(fromMs: number): PauseTrace {
    return {
      pid: process.pid,
      originMs: monotonicMs(0),
      fromMs,
      gc: this.#gc.filter((p) => p.startMs >= fromMs),
      stalls: this.#stalls.filter((p) => p.startMs >= fromMs),
      dropped: this.#dropped,
    };
  }

  stop(): void {
    this.#observer.disconnect();
    clearInterval(this.#ticker);
    if (this.#sched !== undefined) closeSync(this.#sched);
  }
}
