import { readFileSync } from "node:fs";
import type { ContractProblem } from "./contract-error.js";
import { findInPaths, isCompilerProvided } from "./proto-paths.js";

/** One .proto file found for compilation, under the name it is imported by. */
export interface SourceFile {
  /** The import name, e.g. "examples/orders/v1/orders.proto". */
  readonly name: string;
  readonly text: string;
  readonly imports: readonly ImportStatement[];
}

export interface ImportStatement {
  readonly target: string;
  /** 1-based position of the `import` keyword. */
  readonly line: number;
  readonly column: number;
}

export interface ImportClosure {
  /** Every file reached from the roots, by import name. */
  readonly files: ReadonlyMap<string, SourceFile>;
  /** Files that are missing, or import a file that is missing, directly or not. */
  readonly incomplete: ReadonlySet<string>;
}

/**
 * Resolves the files to compile the way protoc resolves them with -I: each name is looked
 * up in the import paths in order and the first directory holding it wins; `fallback`
 * holds files the bridge supplies itself when no import path has them. The compiler
 * (buf) has no import paths of its own, so this closure is what it gets to see.
 * google/protobuf/*.proto are the compiler's own and are not looked up.
 *
 * A missing root or import is reported, and everything that depends on it is marked
 * incomplete so that its consequences (unresolved types) are not reported again.
 */
export function resolveImportClosure(
  roots: readonly string[],
  paths: readonly string[],
  fallback: ReadonlyMap<string, string>,
  report: (problem: ContractProblem) => void,
): ImportClosure {
  const files = new Map<string, SourceFile>();
  const missing = new Set<string>();
  const pending = [...roots];
  const searched = `searched ${paths.join(", ")}`;
  const read = (name: string): string | undefined => {
    const found = findInPaths(paths, name);
    return found === undefined ? fallback.get(name) : readFileSync(found, "utf8");
  };
  for (const root of roots) {
    if (!isImportName(root)) {
      report({ file: root, message: `not a file name relative to an import path (${IMPORT_NAME_RULE})` });
      missing.add(root);
    } else if (read(root) === undefined) {
      report({ file: root, message: `file not found in the import paths (${searched})` });
      missing.add(root);
    }
  }
  while (pending.length > 0) {
    const name = pending.shift() as string;
    if (files.has(name) || missing.has(name) || isCompilerProvided(name)) continue;
    const text = read(name);
    if (text === undefined) continue;
    const imports = scanImports(text);
    files.set(name, { name, text, imports });
    for (const statement of imports) {
      const target = statement.target;
      if (isCompilerProvided(target) || files.has(target)) continue;
      if (!isImportName(target)) {
        missing.add(target);
        report({
          file: name,
          line: statement.line,
          column: statement.column,
          message: `import "${target}" is not a file name relative to an import path (${IMPORT_NAME_RULE})`,
        });
        continue;
      }
      if (!missing.has(target) && read(target) === undefined) {
        missing.add(target);
      }
      if (missing.has(target)) {
        report({
          file: name,
          line: statement.line,
          column: statement.column,
          message: `import "${target}" not found in the import paths (${searched})`,
        });
        continue;
      }
      pending.push(target);
    }
  }
  return { files, incomplete: incompleteFiles(files, missing) };
}

const IMPORT_NAME_RULE = "forward slashes, no leading /, no empty, . or .. segments, as protoc requires";

/**
 * Whether a name is one protoc accepts for a file in an import path. It is also what
 * keeps every staged file inside the compiler's directory (buf-compiler).
 */
export function isImportName(name: string): boolean {
  if (name === "" || name.startsWith("/") || name.includes("\\")) return false;
  return name.split("/").every((segment) => segment !== "" && segment !== "." && segment !== "..");
}

function incompleteFiles(
  files: ReadonlyMap<string, SourceFile>,
  missing: ReadonlySet<string>,
): ReadonlySet<string> {
  const verdict = new Map<string, boolean>();
  const isIncomplete = (name: string): boolean => {
    if (missing.has(name)) return true;
    const known = verdict.get(name);
    if (known !== undefined) return known;
    // An import cycle is the compiler's to report; while visiting, assume complete.
    verdict.set(name, false);
    const file = files.get(name);
    const result = file?.imports.some((i) => isIncomplete(i.target)) === true;
    verdict.set(name, result);
    return result;
  };
  const incomplete = new Set<string>(missing);
  for (const name of files.keys()) if (isIncomplete(name)) incomplete.add(name);
  return incomplete;
}

/**
 * The import statements of a .proto file: `import [public|weak|option] "file";` at the
 * top level. Comments and string literals are skipped so that neither can fake an
 * import; anything malformed is left to the compiler to report.
 */
export function scanImports(text: string): ImportStatement[] {
  const imports: ImportStatement[] = [];
  let line = 1;
  let lineStart = 0;
  let i = 0;
  // True where a statement may begin: at the start, after ';' or after a block.
  let statementStart = true;
  let pendingImport: { line: number; column: number } | undefined;
  while (i < text.length) {
    const c = text[i] as string;
    if (c === "\n") {
      line++;
      lineStart = ++i;
      continue;
    }
    if (c === " " || c === "\t" || c === "\r" || c === "\f" || c === "\v") {
      i++;
      continue;
    }
    if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      continue;
    }
    if (c === "/" && text[i + 1] === "*") {
      i += 2;
      while (i < text.length && !(text[i] === "*" && text[i + 1] === "/")) {
        if (text[i] === "\n") {
          line++;
          lineStart = i + 1;
        }
        i++;
      }
      i += 2;
      continue;
    }
    if (c === '"' || c === "'") {
      const start = i + 1;
      i = start;
      while (i < text.length && text[i] !== c && text[i] !== "\n") i += text[i] === "\\" ? 2 : 1;
      if (pendingImport !== undefined) imports.push({ target: text.slice(start, i), ...pendingImport });
      pendingImport = undefined;
      i++;
      statementStart = false;
      continue;
    }
    if (/[A-Za-z_]/.test(c)) {
      const start = i;
      while (i < text.length && /[A-Za-z0-9_.]/.test(text[i] as string)) i++;
      const word = text.slice(start, i);
      if (statementStart && word === "import") {
        pendingImport = { line, column: start - lineStart + 1 };
      } else if (
        !(pendingImport !== undefined && (word === "public" || word === "weak" || word === "option"))
      ) {
        pendingImport = undefined;
      }
      statementStart = false;
      continue;
    }
    statementStart = c === ";" || c === "}" || c === "{";
    pendingImport = undefined;
    i++;
  }
  return imports;
}
