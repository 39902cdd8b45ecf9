/** Counts failures and keeps a few distinct descriptions, so a failed run says why. */
export class ErrorTally {
  count = 0;
  readonly #samples = new Set<string>();

  add(failure: string, times = 1): void {
    this.count += times;
    if (this.#samples.size < 5) this.#samples.add(failure);
  }

  get samples(): string[] {
    return [...this.#samples];
  }
}
