import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";

/** Where command-line problems are reported as coming from. */
export const COMMAND_LINE = "command line";

/** One thing wrong with the configuration, located in the file where possible. */
export interface ConfigProblem {
  /** The config file, or "command line" for a flag. */
  readonly file: string;
  /** 1-based line and column of the offending key or value. */
  readonly line?: number;
  readonly column?: number;
  /** Dotted key path ("processes[0].location"), a flag ("--grpc"), or "" for the whole file. */
  readonly path: string;
  readonly message: string;
}

/** Every configuration problem at once, so one `sessionbridge validate` run shows them all. */
export class ConfigError extends BridgeError {
  readonly problems: readonly ConfigProblem[];

  constructor(problems: readonly ConfigProblem[]) {
    super(Code.INVALID_ARGUMENT, Reason.INVALID_CONFIG, formatConfigProblems(problems));
    this.problems = problems;
  }
}

export function formatConfigProblems(problems: readonly ConfigProblem[]): string {
  const heading =
    problems.length === 1 ? "invalid configuration:" : `invalid configuration (${problems.length} problems):`;
  return [heading, ...problems.map(formatConfigProblem)].join("\n");
}

/** "FILE:LINE:COL: path.to.key: what is wrong (expected …, got …)". */
export function formatConfigProblem(problem: ConfigProblem): string {
  const place =
    problem.line === undefined
      ? problem.file
      : `${problem.file}:${problem.line}${problem.column === undefined ? "" : `:${problem.column}`}`;
  const path = problem.path === "" ? "" : `${problem.path}: `;
  return `${place}: ${path}${problem.message}`;
}

/** A message in the house form: what is wrong, then what was expected and what was found. */
export function expectedGot(what: string, expected: string, got: unknown): string {
  return `${what} (expected ${expected}, got ${describeValue(got)})`;
}

/** A YAML value as a user would recognise it in an error message. */
export function describeValue(value: unknown): string {
  if (value === undefined) return "nothing";
  if (value === null) return "null";
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return value.length === 0 ? "an empty list" : "a list";
  if (typeof value === "object") return "a mapping";
  return String(value);
}

/** File problems in document order, then command-line ones; ties keep their order. */
export function sortConfigProblems(problems: readonly ConfigProblem[]): ConfigProblem[] {
  const rank = (p: ConfigProblem): number => (p.file === COMMAND_LINE ? Number.MAX_SAFE_INTEGER : 0);
  return problems
    .map((problem, order) => ({ problem, order }))
    .sort(
      (a, b) =>
        rank(a.problem) - rank(b.problem) ||
        (a.problem.line ?? Number.MAX_SAFE_INTEGER) - (b.problem.line ?? Number.MAX_SAFE_INTEGER) ||
        (a.problem.column ?? 0) - (b.problem.column ?? 0) ||
        a.order - b.order,
    )
    .map(({ problem }) => problem);
}
