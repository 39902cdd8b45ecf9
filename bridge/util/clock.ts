/**
 * Time as the engine sees it. Lifetime rules (S12), retention and backoff read the clock
 * and arm timers through this, so tests can move time forward instead of sleeping.
 */
export interface Clock {
  /** Epoch milliseconds. */
  now(): number;
  /** Runs `fn` once after `delayMs`; the timer never keeps the process alive. */
  setTimer(fn: () => void, delayMs: number): Timer;
}

export interface Timer {
  cancel(): void;
}

/** Longest delay Node's timers take (about 24.8 days); longer waits re-arm. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The real clock. Delays beyond Node's timer range are waited out in steps. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, delayMs) {
    let handle: NodeJS.Timeout | undefined;
    const due = Date.now() + Math.max(0, delayMs);
    const arm = (): void => {
      const left = due - Date.now();
      if (left > MAX_TIMER_MS) {
        handle = setTimeout(arm, MAX_TIMER_MS);
      } else {
        handle = setTimeout(fn, Math.max(0, left));
      }
      handle.unref();
    };
    arm();
    return { cancel: () => clearTimeout(handle) };
  },
};

/** A clock that moves only when told to: timers due by then run in due order. */
export class ManualClock implements Clock {
  #now: number;
  #seq = 0;
  readonly #timers = new Map<number, { readonly at: number; readonly fn: () => void }>();

  constructor(startMs = Date.now()) {
    this.#now = startMs;
  }

  now(): number {
    return this.#now;
  }

  setTimer(fn: () => void, delayMs: number): Timer {
    const id = ++this.#seq;
    this.#timers.set(id, { at: this.#now + Math.max(0, delayMs), fn });
    return { cancel: () => this.#timers.delete(id) };
  }

  /** Moves time forward by `ms`, running every timer that comes due on the way. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      let next: [number, { at: number; fn: () => void }] | undefined;
      for (const entry of this.#timers) {
        if (entry[1].at <= target && (next === undefined || entry[1].at < next[1].at)) next = entry;
      }
      if (next === undefined) break;
      this.#timers.delete(next[0]);
      this.#now = Math.max(this.#now, next[1].at);
      next[1].fn();
    }
    this.#now = target;
  }
}
