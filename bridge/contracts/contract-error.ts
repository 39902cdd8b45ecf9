import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";

/** One thing wrong with the configured contracts, located as precisely as the loader can. */
export interface ContractProblem {
  /** The .proto file, relative to its import path, as the configuration names it. */
  readonly file: string;
  /** 1-based position in the file, for compiler errors and imports. */
  readonly line?: number;
  readonly column?: number;
  /** Full name of the service; absent for problems of the file itself (missing, syntax). */
  readonly service?: string;
  /** Method name, for problems of one operation. */
  readonly method?: string;
  readonly message: string;
}

/**
 * Every problem found in the contracts, reported together so one run of
 * `sessionbridge validate` shows them all.
 */
export class ContractError extends BridgeError {
  readonly problems: readonly ContractProblem[];

  constructor(problems: readonly ContractProblem[]) {
    super(Code.INVALID_ARGUMENT, Reason.INVALID_CONFIG, formatContractProblems(problems));
    this.problems = problems;
  }
}

/** "FILE:LINE:COL: Service.Method: message", one problem per line. */
export function formatContractProblems(problems: readonly ContractProblem[]): string {
  const lines = problems.map(formatContractProblem);
  const heading =
    problems.length === 1 ? "invalid contract:" : `invalid contracts (${problems.length} problems):`;
  return [heading, ...lines].join("\n");
}

export function formatContractProblem(problem: ContractProblem): string {
  const place =
    problem.service === undefined
      ? ""
      : problem.method === undefined
        ? `${problem.service}: `
        : `${problem.service}.${problem.method}: `;
  const at =
    problem.line === undefined
      ? problem.file
      : `${problem.file}:${problem.line}${problem.column === undefined ? "" : `:${problem.column}`}`;
  return `${at}: ${place}${problem.message}`;
}
