import type { Clock, Timer } from "../util/clock.js";
import type { LiveSession } from "./live-session.js";

interface Due {
  readonly atMs: number;
  readonly session: LiveSession;
}

/**
 * Idle timeout and maximum lifetime (S12) for any number of sessions with one timer: a
 * min-heap of due times, checked lazily. Activity does not touch the heap; when an entry
 * comes due the session's real due time is recomputed and the entry re-queued if it moved.
 * A session with calls in flight or queued is not idle.
 */
export class LifetimeMonitor {
  readonly #heap: Due[] = [];
  readonly #onExpire: (session: LiveSession, reason: "idle-timeout" | "max-lifetime") => void;
  readonly #clock: Clock;
  #timer: Timer | undefined;
  #timerAtMs = Number.POSITIVE_INFINITY;
  #stopped = false;
  #dead = 0;

  constructor(
    clock: Clock,
    onExpire: (session: LiveSession, reason: "idle-timeout" | "max-lifetime") => void,
  ) {
    this.#clock = clock;
    this.#onExpire = onExpire;
  }

  /**
   * A session ended: its heap entry is dead. Dead entries are dropped in one pass once
   * they make up half of the heap, so an ended session's memory is released within a
   * bounded amount of turnover instead of when its idle timeout would have come (S12).
   */
  forget(): void {
    this.#dead += 1;
    if (this.#dead < 64 || this.#dead * 2 < this.#heap.length) return;
    const live = this.#heap.filter((due) => due.session.live);
    this.#heap.length = 0;
    this.#dead = 0;
    for (const due of live) this.#push(due);
  }

  /** Entries in the heap, live and dead (for tests of the memory bound). */
  get size(): number {
    return this.#heap.length;
  }

  watch(session: LiveSession): void {
    this.#push({ atMs: dueAt(session, this.#clock.now()), session });
  }

  stop(): void {
    this.#stopped = true;
    this.#timer?.cancel();
    this.#timer = undefined;
  }

  #push(due: Due): void {
    const heap = this.#heap;
    heap.push(due);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = heap[parent] as Due;
      if (p.atMs <= due.atMs) break;
      heap[i] = p;
      i = parent;
    }
    heap[i] = due;
    this.#arm();
  }

  #pop(): Due | undefined {
    const heap = this.#heap;
    const top = heap[0];
    const last = heap.pop();
    if (top === undefined || last === undefined || heap.length === 0) return top;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= heap.length) break;
      const right = left + 1;
      const child =
        right < heap.length && (heap[right] as Due).atMs < (heap[left] as Due).atMs ? right : left;
      if ((heap[child] as Due).atMs >= last.atMs) break;
      heap[i] = heap[child] as Due;
      i = child;
    }
    heap[i] = last;
    return top;
  }

  #arm(): void {
    if (this.#stopped) return;
    const next = this.#heap[0];
    if (next === undefined || next.atMs >= this.#timerAtMs) return;
    this.#timer?.cancel();
    this.#timerAtMs = next.atMs;
    this.#timer = this.#clock.setTimer(() => this.#fire(), next.atMs - this.#clock.now());
  }

  #fire(): void {
    this.#timer = undefined;
    this.#timerAtMs = Number.POSITIVE_INFINITY;
    const now = this.#clock.now();
    for (;;) {
      const head = this.#heap[0];
      if (head === undefined || head.atMs > now) break;
      this.#pop();
      const session = head.session;
      if (!session.live) {
        if (this.#dead > 0) this.#dead -= 1;
        continue;
      }
      if (now >= session.createdAtMs + session.maxLifetimeMs) {
        this.#onExpire(session, "max-lifetime");
        continue;
      }
      const idleAt = session.lastActiveAtMs + session.idleTimeoutMs;
      if (session.inflight === 0 && now >= idleAt) {
        this.#onExpire(session, "idle-timeout");
        continue;
      }
      this.#push({ atMs: dueAt(session, now), session });
    }
    this.#arm();
  }
}

/** When the session should next be looked at. */
function dueAt(session: LiveSession, now: number): number {
  const lifetimeEnd = session.createdAtMs + session.maxLifetimeMs;
  // Busy sessions are not idle: look again one idle period from now.
  const idleEnd =
    session.inflight > 0 ? now + session.idleTimeoutMs : session.lastActiveAtMs + session.idleTimeoutMs;
  return Math.min(lifetimeEnd, idleEnd);
}
