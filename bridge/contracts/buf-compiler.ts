import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { ContractProblem } from "./contract-error.js";
import { isImportName, type SourceFile } from "./import-closure.js";

export interface CompileResult {
  /** A FileDescriptorSet with every target and its imports, imports first, with source info; undefined on failure. */
  readonly descriptorSet: Uint8Array | undefined;
  /** Compiler errors, each at FILE:LINE:COL under the file's import name. */
  readonly problems: readonly ContractProblem[];
}

/** Compiler output is descriptors of local files; far below this, but never unbounded. */
const MAX_OUTPUT_BYTES = 256 * 1024 * 1024;
const CACHE_ENTRIES = 16;
const cache = new Map<string, CompileResult>();

/**
 * Compiles .proto files with buf, the one protobuf compiler of the bridge. buf has no
 * import paths (-I): it compiles a directory. So the files, already resolved under their
 * import names (see resolveImportClosure), are staged into a temporary directory and
 * `buf build DIR --path TARGET…` writes a FileDescriptorSet. Error positions name files
 * by import name, which is how the configuration names them.
 *
 * Results are kept per content (names and texts of the files, and the targets): loading
 * the same contracts again, as tests and `validate` then `start` do, costs no new run.
 */
export function compileProtos(
  files: ReadonlyMap<string, SourceFile>,
  targets: readonly string[],
): CompileResult {
  const key = cacheKey(files, targets);
  const cached = cache.get(key);
  if (cached !== undefined) return cached;
  const result = runBuf(files, targets);
  if (cache.size >= CACHE_ENTRIES) cache.delete(cache.keys().next().value as string);
  cache.set(key, result);
  return result;
}

function runBuf(files: ReadonlyMap<string, SourceFile>, targets: readonly string[]): CompileResult {
  const dir = mkdtempSync(path.join(os.tmpdir(), "sessionbridge-protos-"));
  try {
    // A buf.yaml of our own: the staged directory is one module, with no lint or deps.
    writeFileSync(path.join(dir, "buf.yaml"), "version: v2\n");
    for (const file of files.values()) {
      // Names come from resolveImportClosure, which admits only these; never write outside dir.
      if (!isImportName(file.name)) throw compilerFailure(`refusing to stage ${JSON.stringify(file.name)}`);
      const target = path.join(dir, ...file.name.split("/"));
      mkdirSync(path.dirname(target), { recursive: true });
      writeFileSync(target, file.text);
    }
    // A plain FileDescriptorSet, without buf's image metadata; with source info, which
    // places the problems found in the options.
    const args = ["build", ".", "--as-file-descriptor-set", "--error-format", "json", "-o", "-#format=binpb"];
    for (const target of targets) args.push("--path", target);
    const [command, prefix] = bufCommand();
    const run = spawnSync(command, [...prefix, ...args], {
      cwd: dir,
      maxBuffer: MAX_OUTPUT_BYTES,
      stdio: ["ignore", "pipe", "pipe"],
    });
    if (run.error !== undefined) throw compilerFailure(`cannot run buf: ${run.error.message}`, run.error);
    const stderr = run.stderr.toString("utf8");
    if (run.status === 0) return { descriptorSet: new Uint8Array(run.stdout), problems: [] };
    const problems = parseErrors(stderr, files);
    if (run.status !== 100 || problems.length === 0) {
      throw compilerFailure(`buf failed (exit ${run.status}): ${stderr.trim()}`);
    }
    return { descriptorSet: undefined, problems };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The compiler itself failed (not installed, crashed): not a problem of the contracts. */
function compilerFailure(message: string, cause?: unknown): BridgeError {
  return new BridgeError(Code.INTERNAL, Reason.INTERNAL, `protobuf compiler: ${message}`, {
    ...(cause === undefined ? {} : { cause }),
  });
}

interface BufError {
  readonly path?: string;
  readonly start_line?: number;
  readonly start_column?: number;
  readonly end_line?: number;
  readonly end_column?: number;
  readonly message?: string;
}

/** One JSON object per line (--error-format json); identical errors are reported once. */
function parseErrors(stderr: string, files: ReadonlyMap<string, SourceFile>): ContractProblem[] {
  const problems: ContractProblem[] = [];
  const seen = new Set<string>();
  for (const line of stderr.split("\n")) {
    if (!line.startsWith("{")) continue;
    let error: BufError;
    try {
      error = JSON.parse(line) as BufError;
    } catch {
      continue;
    }
    const file = error.path ?? "";
    const message = withSnippet(error, files.get(file)?.text);
    const problem: ContractProblem = {
      file,
      ...(error.start_line === undefined ? {} : { line: error.start_line }),
      ...(error.start_column === undefined ? {} : { column: error.start_column }),
      message,
    };
    const id = `${file}:${problem.line}:${problem.column}:${message}`;
    if (seen.has(id)) continue;
    seen.add(id);
    problems.push(problem);
  }
  return problems;
}

/**
 * Some compiler messages do not quote what they refer to ("mismatched types"); the text
 * of the span does, when it is short, on one line and not already in the message.
 */
function withSnippet(error: BufError, text: string | undefined): string {
  const message = error.message ?? "compile error";
  const { start_line: line, start_column: start, end_line: endLine, end_column: end } = error;
  if (text === undefined || line === undefined || start === undefined || end === undefined) return message;
  if (endLine !== line || end <= start || end - start > 60) return message;
  const snippet = text.split("\n")[line - 1]?.slice(start - 1, end - 1);
  if (snippet === undefined || snippet.trim() === "" || message.includes(snippet)) return message;
  return `${message} (at ${snippet})`;
}

function cacheKey(files: ReadonlyMap<string, SourceFile>, targets: readonly string[]): string {
  const hash = createHash("sha256");
  for (const target of targets) hash.update(`t\0${target}\0`);
  for (const name of [...files.keys()].sort()) {
    hash.update(`f\0${name}\0`);
    hash.update((files.get(name) as SourceFile).text);
    hash.update("\0");
  }
  return hash.digest("hex");
}

let command: [string, string[]] | undefined;

/**
 * The buf binary of the installed @bufbuild/buf package: its platform package's binary
 * directly (no extra Node process), else the package's launcher script.
 */
function bufCommand(): [string, string[]] {
  if (command !== undefined) return command;
  const require = createRequire(import.meta.url);
  const arch = os.arch() === "arm64" && process.platform === "linux" ? "aarch64" : os.arch();
  const exe = process.platform === "win32" ? "buf.exe" : "buf";
  try {
    command = [require.resolve(`@bufbuild/buf-${process.platform}-${arch}/bin/${exe}`), []];
  } catch {
    command = [process.execPath, [require.resolve("@bufbuild/buf/bin/buf")]];
  }
  return command;
}
