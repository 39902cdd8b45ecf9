/** Told when the measured window opens and closes, so CPU can be sampled at the same instants. */
export interface WindowHooks {
  onMeasureStart(): void;
  onMeasureEnd(): void;
}

/**
 * The warm-up and the measured window of one load run, driven by two timers. Drivers ask
 * `measuring` when a call completes; the window's real length is taken from the clock, not
 * assumed from the timers.
 */
export class LoadWindow {
  readonly startMs = performance.now();
  readonly warmupEndMs: number;
  readonly measureEndMs: number;
  phase: "warmup" | "measuring" | "done" = "warmup";
  #openedAt = 0;
  #closedAt = 0;

  constructor(warmupMs: number, measureMs: number, hooks: WindowHooks, onDone: () => void) {
    this.warmupEndMs = this.startMs + warmupMs;
    this.measureEndMs = this.warmupEndMs + measureMs;
    setTimeout(() => {
      this.phase = "measuring";
      this.#openedAt = performance.now();
      hooks.onMeasureStart();
      setTimeout(() => {
        this.phase = "done";
        this.#closedAt = performance.now();
        hooks.onMeasureEnd();
        onDone();
      }, this.measureEndMs - this.#openedAt);
    }, warmupMs);
  }

  get measuring(): boolean {
    return this.phase === "measuring";
  }

  get windowMs(): number {
    return this.#closedAt - this.#openedAt;
  }
}
