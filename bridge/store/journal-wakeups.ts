/**
 * Who is waiting for new journal entries of which session (S9: the journal is readable as
 * a live stream). A store notifies it once a commit with entries is durable; followers
 * then re-read the store by index. It holds one flag per follower, never the entries
 * themselves, so its memory does not depend on how fast followers read.
 */
export interface JournalWakeups {
  /** Registers a follower of a session until it calls release(). */
  watch(sessionId: string): JournalWatch;
  /** Entries of these sessions are durable: wakes their followers. */
  notify(sessionIds: Iterable<string>): void;
  /** The store is closing: wakes every follower now and every later wait at once. */
  close(): void;
  /** Followers registered now (for tests and diagnostics). */
  followers(): number;
}

export interface JournalWatch {
  /**
   * Forgets earlier wake-ups. A follower calls it before it reads, so a commit that lands
   * during or after the read still wakes the wait that follows.
   */
  reset(): void;
  /** Resolves at the first notify since reset() (at once if there was one) or on abort. */
  wait(signal: AbortSignal): Promise<void>;
  /** Unregisters; idempotent. */
  release(): void;
}

interface Waiter {
  woken: boolean;
  wake: (() => void) | undefined;
}

export function createJournalWakeups(): JournalWakeups {
  const bySession = new Map<string, Set<Waiter>>();
  let closed = false;

  const wakeUp = (waiter: Waiter): void => {
    waiter.woken = true;
    const wake = waiter.wake;
    waiter.wake = undefined;
    wake?.();
  };

  return {
    watch(sessionId) {
      const waiter: Waiter = { woken: closed, wake: undefined };
      let waiters = bySession.get(sessionId);
      if (waiters === undefined) {
        waiters = new Set();
        bySession.set(sessionId, waiters);
      }
      waiters.add(waiter);
      let released = false;
      return {
        reset() {
          if (!closed) waiter.woken = false;
        },
        wait(signal) {
          if (waiter.woken || signal.aborted) return Promise.resolve();
          return new Promise<void>((resolve) => {
            const done = (): void => {
              signal.removeEventListener("abort", done);
              waiter.wake = undefined;
              resolve();
            };
            waiter.wake = done;
            signal.addEventListener("abort", done, { once: true });
          });
        },
        release() {
          if (released) return;
          released = true;
          wakeUp(waiter);
          const current = bySession.get(sessionId);
          current?.delete(waiter);
          if (current?.size === 0) bySession.delete(sessionId);
        },
      };
    },

    notify(sessionIds) {
      if (bySession.size === 0) return;
      for (const sessionId of sessionIds) {
        for (const waiter of bySession.get(sessionId) ?? []) wakeUp(waiter);
      }
    },

    close() {
      closed = true;
      for (const waiters of bySession.values()) for (const waiter of waiters) wakeUp(waiter);
    },

    followers() {
      let count = 0;
      for (const waiters of bySession.values()) count += waiters.size;
      return count;
    },
  };
}
