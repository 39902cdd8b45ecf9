import type { Access } from "../contracts/contract.js";

/** Gives back a turn; calling it twice is harmless. */
export type Release = () => void;

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
   * Resolves with a release function when the caller's turn comes. `signal` aborting
   * while still waiting removes the caller and rejects with the signal's reason.
   */
  acquire(access: Access, signal?: AbortSignal): Promise<Release> {
    if (this.#waiting.length === 0 && this.#canRun(access)) {
      return Promise.resolve(this.#start(access));
    }
    return new Promise<Release>((resolve, reject) => {
      const waiter: Waiter = {
        access,
        grant: (release) => {
          signal?.removeEventListener("abort", onAbort);
          resolve(release);
        },
        reject: (error) => {
          signal?.removeEventListener("abort", onAbort);
          reject(error);
        },
      };
      const onAbort = (): void => {
        const at = this.#waiting.indexOf(waiter);
        if (at < 0) return;
        this.#waiting.splice(at, 1);
        reject(signal?.reason instanceof Error ? signal.reason : new Error("aborted"));
        // A removed exclusive head may unblock shared waiters behind it.
        this.#pump();
      };
      if (signal?.aborted) {
        reject(signal.reason instanceof Error ? signal.reason : new Error("aborted"));
        return;
      }
      signal?.addEventListener("abort", onAbort, { once: true });
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
