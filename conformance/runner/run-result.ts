import type { Mode, Rule } from "./case-schema.js";
import type { TransportName } from "./lab-wire.js";

/** One cell of the matrix: a mode and a transport pair (direct mode has no outbound). */
export interface Permutation {
  readonly mode: Mode;
  readonly inbound: TransportName;
  readonly outbound: TransportName | "-";
}

export function permutationKey(p: Permutation): string {
  return p.mode === "direct" ? `direct ${p.inbound}` : `bridged ${p.inbound}→${p.outbound}`;
}

/** One request and its answer, as a failure's transcript shows them. */
export interface Exchange {
  readonly step: number;
  readonly label: string;
  readonly request?: {
    readonly operation: string;
    readonly body: unknown;
    readonly metadata: Readonly<Record<string, string>>;
    readonly deadline?: string;
  };
  readonly response?: {
    readonly code: string;
    readonly reason?: string;
    readonly message: string;
    readonly headers: Readonly<Record<string, string>>;
    readonly trailers: Readonly<Record<string, string>>;
    readonly body?: unknown;
  };
  readonly note?: string;
}

/**
 * pass; fail; skip (not run, with the reason); known-failure (failed and listed in the
 * target's known-failing file); stale (listed as known-failing but passed: fails the run).
 */
export type Status = "pass" | "fail" | "skip" | "known-failure" | "stale";

export interface CaseResult {
  readonly caseId: string;
  readonly description: string;
  readonly side: string;
  readonly permutation: Permutation;
  readonly status: Status;
  /** The rules the failing check belongs to (S1–S15). */
  readonly blamed: readonly Rule[];
  readonly failure?: string;
  readonly skipReason?: string;
  readonly transcript: readonly Exchange[];
  readonly durationMs: number;
}

export interface RunSummary {
  readonly target: string;
  readonly expect: "pass" | "fail";
  readonly breaks: readonly Rule[];
  readonly cases: number;
  readonly permutations: readonly string[];
  readonly total: number;
  readonly passed: number;
  readonly failed: number;
  readonly skipped: number;
  readonly knownFailures: number;
  readonly stale: number;
  /** Why cases were skipped, with counts. */
  readonly skipReasons: Readonly<Record<string, number>>;
  /** Every rule some failure blamed. */
  readonly blamedRules: readonly Rule[];
  readonly durationMs: number;
  /** The run's verdict: what the exit code says. */
  readonly ok: boolean;
  readonly verdict: string;
  readonly seed: number;
  readonly sample: string | undefined;
}

export interface RunReport {
  readonly summary: RunSummary;
  readonly results: readonly CaseResult[];
}
