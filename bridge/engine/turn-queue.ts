import type { Access } from "../contracts/contract.js";
import { systemClock, type Timer } from "../util/clock.js";
import { deadlineExceeded } from "./session-errors.js";

/** Gives back a turn; calling it twice is harmless. */
export type Release = () => void;

/** What ends a wait for a turn: the caller leaving, or its deadline (S15). */
export interface TurnWait {
  /**
   * The caller, whose `signal` is read only when it really has to wait: an inbound
   * adapter may build the signal on first read (bridge/call/call.ts).
   */
  readonly caller?: { readonly signal: AbortSignal };
  /** Absolute, epoch ms. Any value works, however far away (timers re-arm past ~24.8 days). */
  readonly deadlineMs?: number | undefined;
}

interface Waiter {
  readonly access: Access;
  readonly grant: (release: Release) => void;
  readonly reject: (error: Error) => void;
}

/**
 * Turn-taking inside one session (S6): exclusive operations run alone and in arrival
 * order; shared operations run side by side, but never overtake an exclusive one that
 * arrived earlier (a FIFO readers-writer lock). The queue can be paused, which is how a
 * SEQUENTIAL service keeps a session waiting until the sessions before it end.
 */
export class TurnQueue {
  #running = 0;
  #exclusive = false;
  #paused: boolean;
  readonly #waiting: Waiter[] = [];

  constructor(paused = false) {
    this.#paused = paused;
  }

  /** Calls running now. */
  get active(): number {
    return this.#running;
  }

  /** Calls waiting for their turn. */
  get waiting(): number {
    return this.#waiting.length;
  }

  /**
   * Resolves with a release function when the caller's turn comes. The wait ends early,
   * removing the caller from the queue, when `wait.caller.signal` aborts (rejecting with the
   * signal's reason) or `wait.deadlineMs` passes (DEADLINE_EXCEEDED). A deadline timer is
   * armed only when the caller really has to wait.
   */
  acquire(access: Access, wait: TurnWait = {}): Promise<Release> {
    if (this.#waiting.length === 0 && this.#canRun(access)) {
      return Promise.resolve(this.#start(access));
    }
    const { caller, deadlineMs } = wait;
    const signal = caller?.signal;
    return new Promise<Release>((resolve, reject) => {
      let timer: Timer | undefined;
      const done = (): void => {
        signal?.removeEventListener("abort", onAbort);
        timer?.cancel();
      };
      const waiter: Waiter = {
        access,
        grant: (release) => {
          done();
          resolve(release);
        },
        reject: (error) => {
          done();
          reject(error);
        },
      };
      const leave = (error: Error): void => {
        const at = this.#waiting.indexOf(waiter);
        if (at < 0) return;
        this.#waiting.splice(at, 1);
        done();
        reject(error);
        // A removed exclusive head may unblock shared waiters behind it.
        this.#pump();
      };
      const onAbort = (): void => leave(abortReason(signal));
      if (signal?.aborted) {
        reject(abortReason(signal));
        return;
      }
      if (deadlineMs !== undefined && deadlineMs <= Date.now()) {
        reject(deadlineExceeded("while the call waited for its turn in the session"));
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
      if (deadlineMs !== undefined) {
        timer = systemClock.setTimer(
          () => leave(deadlineExceeded("while the call waited for its turn in the session")),
          deadlineMs - Date.now(),
        );
      }
      this.#waiting.push(waiter);
    });
  }

  /** Lets queued calls run (SEQUENTIAL: this session's turn has come). */
  resume(): void {
    this.#paused = false;
    this.#pump();
  }

  /** Rejects every waiting call (S12: the session ended before they were delivered). */
  rejectWaiting(error: () => Error): void {
    const waiting = this.#waiting.splice(0);
    for (const waiter of waiting) waiter.reject(error());
  }

  #canRun(access: Access): boolean {
    if (this.#paused || this.#exclusive) return false;
    return access === "shared" || this.#running === 0;
  }

  #start(access: Access): Release {
    this.#running += 1;
    if (access === "exclusive") this.#exclusive = true;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#running -= 1;
      if (access === "exclusive") this.#exclusive = false;
      this.#pump();
    };
  }

  #pump(): void {
    while (this.#waiting.length > 0) {
      const head = this.#waiting[0];
      if (head === undefined || !this.#canRun(head.access)) return;
      this.#waiting.shift();
      head.grant(this.#start(head.access));
    }
  }
}

function abortReason(signal: AbortSignal | undefined): Error {
  return signal?.reason instanceof Error ? signal.reason : new Error("aborted");
}
