import { monotonicMs } from "./pause-log.js";

/** The calls of a window, each as due, sent and answered (monotonic ms, see pause-log.ts). */
export interface CallTrace {
  readonly dueMs: readonly number[];
  readonly sentMs: readonly number[];
  readonly endMs: readonly number[];
  /** Calls not kept because the log was full. */
  readonly dropped: number;
}

/**
 * Times of every successful call in a fixed-rate window (BENCH_TRACE), so that the slow
 * ones can be matched with the bridge's pauses. Preallocated for the calls the window
 * schedules (with room for the drain), never more.
 */
export class CallLog {
  readonly #due: Float64Array;
  readonly #sent: Float64Array;
  readonly #end: Float64Array;
  #count = 0;
  #dropped = 0;

  constructor(capacity: number) {
    this.#due = new Float64Array(capacity);
    this.#sent = new Float64Array(capacity);
    this.#end = new Float64Array(capacity);
  }

  /** Times from performance.now(). */
  record(dueMs: number, sentMs: number, endMs: number): void {
    if (this.#count >= this.#due.length) {
      this.#dropped += 1;
      return;
    }
    this.#due[this.#count] = dueMs;
    this.#sent[this.#count] = sentMs;
    this.#end[this.#count] = endMs;
    this.#count += 1;
  }

  trace(): CallTrace {
    const on = (times: Float64Array): number[] =>
      Array.from(times.subarray(0, this.#count), (t) => Math.round(monotonicMs(t) * 1000) / 1000);
    return { dueMs: on(this.#due), sentMs: on(this.#sent), endMs: on(this.#end), dropped: this.#dropped };
  }
}
