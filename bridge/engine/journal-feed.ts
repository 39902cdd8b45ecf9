import type { JournalRecord } from "../store/records.js";

type Listener = (event: { entries?: readonly JournalRecord[]; complete?: true }) => void;

/**
 * Live journal notifications for History with follow (S9: the journal is readable as a
 * live stream). Entries are published only after they are durable, in commit order.
 */
export class JournalFeed {
  readonly #listeners = new Map<string, Set<Listener>>();
  /** Ended sessions whose last calls have not recorded their outcomes yet. */
  readonly #unsettled = new Set<string>();

  subscribe(sessionId: string, listener: Listener): () => void {
    let set = this.#listeners.get(sessionId);
    if (set === undefined) {
      set = new Set();
      this.#listeners.set(sessionId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(sessionId);
    };
  }

  publish(entries: readonly JournalRecord[]): void {
    if (this.#listeners.size === 0) return;
    let bySession: Map<string, JournalRecord[]> | undefined;
    for (const entry of entries) {
      if (!this.#listeners.has(entry.sessionId)) continue;
      bySession ??= new Map();
      const list = bySession.get(entry.sessionId) ?? [];
      list.push(entry);
      bySession.set(entry.sessionId, list);
    }
    if (bySession === undefined) return;
    for (const [sessionId, list] of bySession) {
      for (const listener of this.#listeners.get(sessionId) ?? []) listener({ entries: list });
    }
  }

  /** The session ended while calls were still in flight: its journal is not final yet. */
  ended(sessionId: string): void {
    this.#unsettled.add(sessionId);
  }

  unsettled(sessionId: string): boolean {
    return this.#unsettled.has(sessionId);
  }

  /** The session ended and everything it will ever journal is durable. */
  complete(sessionId: string): void {
    this.#unsettled.delete(sessionId);
    for (const listener of this.#listeners.get(sessionId) ?? []) listener({ complete: true });
  }
}
