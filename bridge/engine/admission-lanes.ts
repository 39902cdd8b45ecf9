/**
 * Serialises the admission of calls that may reach the same session (S6, S7): a call's
 * admission (idempotency lookup, session resolution, sequence check, enqueueing) may
 * await the store, and two pipelined calls to one session must still be admitted in the
 * order they arrived, or a numbered pair could be seen as a gap. Calls to different
 * sessions use different lanes and do not wait for each other.
 */
export class AdmissionLanes {
  #tails = new Map<string, Promise<unknown>>();

  /** Runs `admit` after every earlier admission in the same lane has finished. */
  run<T>(lane: string, admit: () => Promise<T>): Promise<T> {
    const previous = this.#tails.get(lane);
    const result = previous === undefined ? admit() : previous.then(admit, admit);
    // One settle step both ends the tail and forgets the lane once nothing follows it:
    // every call with a session goes through here (DESIGN §6).
    const forget = (): void => {
      if (this.#tails.get(lane) !== tail) return;
      this.#tails.delete(lane);
      // Emptied, the map is replaced: a long-lived Map's rehashed tables (every few sets
      // and deletes) are allocated in the old generation once it is there, and only a full
      // collection frees them; a fresh one starts young (DESIGN §6, memory per call).
      if (this.#tails.size === 0) this.#tails = new Map();
    };
    const tail: Promise<void> = result.then(forget, forget);
    this.#tails.set(lane, tail);
    return result;
  }
}
