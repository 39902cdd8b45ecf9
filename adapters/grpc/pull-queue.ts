/**
 * Turns pushed events into an async iterator with backpressure: past HIGH_WATER items
 * not yet taken, `pause` stops the source; once the reader has caught up to half of
 * that, `resume` starts it again. Items pushed before a failure are still read first.
 */
/** Items taken before the array is compacted, so a reader that never quite catches up costs no memory. */
const COMPACT_AT = 1024;

export class PullQueue<T> implements AsyncIterable<T> {
  static readonly HIGH_WATER = 64;
  #items: T[] = [];
  #head = 0;
  readonly #pause: () => void;
  readonly #resume: () => void;
  #paused = false;
  #done = false;
  #error: unknown;
  #wake: (() => void) | undefined;

  constructor(pause: () => void, resume: () => void) {
    this.#pause = pause;
    this.#resume = resume;
  }

  push(item: T): void {
    if (this.#done) return;
    this.#items.push(item);
    if (!this.#paused && this.#items.length - this.#head >= PullQueue.HIGH_WATER) {
      this.#paused = true;
      this.#pause();
    }
    this.#wakeReader();
  }

  end(): void {
    this.#done = true;
    this.#wakeReader();
  }

  fail(error: unknown): void {
    if (this.#done) return;
    this.#error = error;
    this.#done = true;
    this.#wakeReader();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      if (this.#head < this.#items.length) {
        const item = this.#items[this.#head] as T;
        this.#head += 1;
        if (this.#head === this.#items.length || this.#head >= COMPACT_AT) {
          this.#items = this.#items.slice(this.#head);
          this.#head = 0;
        }
        if (this.#paused && this.#items.length - this.#head <= PullQueue.HIGH_WATER / 2) {
          this.#paused = false;
          this.#resume();
        }
        yield item;
        continue;
      }
      if (this.#done) {
        if (this.#error !== undefined) throw this.#error;
        return;
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
    }
  }

  #wakeReader(): void {
    const wake = this.#wake;
    this.#wake = undefined;
    wake?.();
  }
}
