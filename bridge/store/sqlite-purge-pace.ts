/** Rows the first step of a purge deletes: small enough for any machine. */
export const FIRST_STEP_ROWS = 8;
/** Rows a step never exceeds, however fast the machine: bounds what one step writes to the WAL. */
export const MAX_STEP_ROWS = 4_096;

/** Default of SqliteStoreOptions.purgeStepBudgetMs. */
export const DEFAULT_PURGE_STEP_BUDGET_MS = 4;

/**
 * How many rows the next purge step deletes. A fixed count takes a fraction of a
 * millisecond on a quiet machine and tens of milliseconds on a loaded one (a step of 32
 * rows once held the writer 58.9 ms), and every commit queued behind a step waits for it
 * (S9: a call is answered once its commit is durable). The pace measures each step
 * instead: it grows the step while steps finish in under half the budget, and shrinks it
 * at once, in proportion, when one goes over, so steps stay under the budget whatever the
 * load.
 */
export interface PurgePace {
  /** Rows the next step may delete. */
  rows(): number;
  /** What the last step did: the rows it was given, and how long it held the writer. */
  observe(givenRows: number, deletedRows: number, ms: number): void;
}

export function createPurgePace(budgetMs: number): PurgePace {
  let rows = FIRST_STEP_ROWS;
  return {
    rows: () => rows,
    observe(givenRows, deletedRows, ms) {
      if (ms > budgetMs) {
        // Over the budget: cut to what would take half of it, and at least by half.
        const fitting = Math.floor((givenRows * budgetMs) / (2 * ms));
        rows = Math.max(1, Math.min(Math.floor(givenRows / 2), fitting));
        return;
      }
      // Only a step that used its whole allowance says how long a larger one would take.
      if (deletedRows < givenRows) return;
      // Twice as many while far under the budget, a quarter more while under half of it:
      // step times vary, so the size approaches the budget from below.
      if (ms < budgetMs / 4) rows = Math.min(MAX_STEP_ROWS, givenRows * 2);
      else if (ms < budgetMs / 2) rows = Math.min(MAX_STEP_ROWS, Math.ceil(givenRows * 1.25));
    },
  };
}
