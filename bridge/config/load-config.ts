/**
 * Configuration file (sessionbridge.yaml). Every key is optional; unknown keys are
 * errors, so a typo is reported rather than silently ignored.
 *
 * ```yaml
 * contracts:
 *   importPaths: [proto]            # relative to the config file's directory (default: [.])
 *   files: [examples/orders/v1/orders.proto]   # relative to an import path
 * processes:
 *   - name: orders                  # unique; letters, digits, '.', '_' and '-'
 *     services: [examples.orders.v1.Orders]    # full service names
 *     location: grpc://127.0.0.1:50061
 *     envelope: false               # optional; true = implements sessionbridge.v1.Process
 * listeners:
 *   grpc: 127.0.0.1:50051           # host:port, port 0 picks a free one; IPv6 as [::1]:50051
 * store: sqlite:.sessionbridge/sessions.db   # or "memory"; sqlite path relative to the config file
 * storeOptions: { synchronous: full }        # optional: full | normal (sqlite only)
 * defaults:                                   # every key optional; positive integers
 *   idleTimeoutMs: 1800000
 *   maxLifetimeMs: 86400000
 *   idempotencyRetentionMs: 86400000
 *   sessionRetentionMs: 86400000
 *   maxPayloadBytes: 4194304
 *   oneWay: { maxAttempts: 5, initialBackoffMs: 200, maxBackoffMs: 10000, attemptTimeoutMs: 10000 }
 * ```
 *
 * Without a file, ./sessionbridge.yaml is used when it exists, otherwise the embedded
 * defaults: no contracts, no processes, gRPC on 127.0.0.1:50051 and the SQLite store at
 * .sessionbridge/sessions.db under the working directory. A file that names no store
 * gets the same SQLite path, relative to the file. Command-line overrides (`--grpc`,
 * `--store memory|sqlite:PATH`, a path relative to the working directory) win over the
 * file. Every problem is reported, each as `FILE:LINE:COL: path.to.key: what is wrong
 * (expected …, got …)`, together in one ConfigError.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { isMap, isScalar, isSeq, LineCounter, type Node, parseDocument } from "yaml";
import type * as z from "zod";
import { closestName } from "../util/did-you-mean.js";
import { checkListenAddress } from "./addresses.js";
import {
  type BridgeConfig,
  DEFAULT_GRPC_ADDRESS,
  DEFAULT_SQLITE_PATH,
  DEFAULTS,
  type DefaultsConfig,
  type StoreConfig,
} from "./config.js";
import {
  COMMAND_LINE,
  ConfigError,
  type ConfigProblem,
  expectedGot,
  sortConfigProblems,
} from "./config-error.js";
import { type ConfigFile, checkStore, configFileSchema } from "./config-schema.js";

/** The file looked for in the working directory when none is given. */
export const DEFAULT_CONFIG_FILE = "sessionbridge.yaml";

export interface ConfigOverrides {
  /** --grpc ADDR */
  readonly grpc?: string;
  /** --store memory|sqlite:PATH; a sqlite path is relative to the working directory. */
  readonly store?: string;
}

export interface LoadConfigOptions {
  /** The config file; relative to cwd. */
  readonly file?: string;
  readonly overrides?: ConfigOverrides;
  /** The working directory; process.cwd() by default. */
  readonly cwd?: string;
}

/** A place in the config file, for problems found after loading (check-config). */
export interface ConfigPlace {
  readonly file: string;
  readonly line?: number;
  readonly column?: number;
}

/** Keys and list indexes from the document root: ["processes", 0, "services", 1]. */
export type KeyPath = readonly PropertyKey[];

export interface LocatedConfig {
  readonly config: BridgeConfig;
  /** The place of a key path in the file, as precisely as known (the nearest ancestor present). */
  placeOf(keyPath: KeyPath): ConfigPlace;
}

/** Loads, validates and resolves the configuration; throws one ConfigError listing every problem. */
export function loadConfig(options: LoadConfigOptions = {}): BridgeConfig {
  return loadLocatedConfig(options).config;
}

/** loadConfig, keeping the file's node positions so later checks can point into it. */
export function loadLocatedConfig(options: LoadConfigOptions = {}): LocatedConfig {
  const cwd = path.resolve(options.cwd ?? process.cwd());
  const overrides = options.overrides ?? {};
  const explicit = options.file !== undefined;
  const display = options.file ?? DEFAULT_CONFIG_FILE;
  const source = path.resolve(cwd, display);
  if (!explicit && !existsSync(source)) {
    const problems = checkOverrides(overrides);
    if (problems.length > 0) throw new ConfigError(problems);
    return {
      config: resolveConfig({}, undefined, cwd, overrides),
      placeOf: () => ({ file: "(embedded defaults)" }),
    };
  }

  let text: string;
  try {
    text = readFileSync(source, "utf8");
  } catch (error) {
    const reason = (error as NodeJS.ErrnoException).code === "ENOENT" ? "file not found" : String(error);
    throw new ConfigError([{ file: display, path: "", message: `cannot read the config file: ${reason}` }]);
  }
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number): ConfigPlace => {
    const { line, col } = lineCounter.linePos(offset);
    return { file: display, line, column: col };
  };
  const placeOf = (keyPath: KeyPath, atKey = false): ConfigPlace => {
    const offset = offsetOf(doc.contents, keyPath, atKey);
    return offset === undefined ? { file: display } : at(offset);
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(
      doc.errors.map((error) => ({
        ...at(error.pos[0]),
        path: "",
        message: `YAML syntax error: ${error.message}`,
      })),
    );
  }

  const raw: unknown = doc.toJS() ?? {};
  const problems: ConfigProblem[] = [];
  const report = (keyPath: KeyPath, message: string, atKey = false): void => {
    problems.push({ ...placeOf(keyPath, atKey), path: formatKeyPath(keyPath), message });
  };
  const knownKeys = new Map<string, readonly string[]>();
  const parsed = configFileSchema.safeParse(raw, {
    error: (issue) => {
      if (issue.code === "unrecognized_keys") {
        const shape = (issue.inst as { shape?: Record<string, unknown> } | undefined)?.shape ?? {};
        knownKeys.set(formatKeyPath(issue.path ?? []), Object.keys(shape));
      }
      return undefined;
    },
  });
  for (const issue of parsed.error?.issues ?? []) reportIssue(issue, knownKeys, report);
  checkAcrossKeys(raw, report);
  problems.push(...checkOverrides(overrides));
  if (problems.length > 0 || !parsed.success) throw new ConfigError(sortConfigProblems(problems));
  return {
    config: resolveConfig(parsed.data, source, cwd, overrides),
    placeOf: (keyPath) => placeOf(keyPath),
  };
}

function reportIssue(
  issue: z.core.$ZodIssue,
  knownKeys: ReadonlyMap<string, readonly string[]>,
  report: (keyPath: KeyPath, message: string, atKey?: boolean) => void,
): void {
  if (issue.code !== "unrecognized_keys") {
    report(issue.path, issue.message);
    return;
  }
  const known = knownKeys.get(formatKeyPath(issue.path)) ?? [];
  for (const key of issue.keys) {
    const near = closestName(key, known);
    const hint = near === undefined ? "" : `, did you mean ${near}?`;
    report([...issue.path, key], `unknown key${hint} (expected one of ${known.join(", ")})`, true);
  }
}

/** Rules that relate several keys; run on the raw document so they report even when other keys are wrong. */
function checkAcrossKeys(
  raw: unknown,
  report: (keyPath: KeyPath, message: string, atKey?: boolean) => void,
): void {
  const root = asRecord(raw);
  const processes = Array.isArray(root.processes) ? root.processes : [];
  const names = new Map<string, number>();
  processes.forEach((entry, index) => {
    const process = asRecord(entry);
    if (typeof process.name === "string") {
      const first = names.get(process.name);
      if (first === undefined) {
        names.set(process.name, index);
      } else {
        const what = `duplicate process name, first used by processes[${first}]`;
        report(["processes", index, "name"], expectedGot(what, "unique names", process.name));
      }
    }
    const services = Array.isArray(process.services) ? process.services : [];
    services.forEach((service, i) => {
      if (services.indexOf(service) !== i) {
        const what = "service listed twice in this process";
        report(["processes", index, "services", i], expectedGot(what, "each service once", service));
      }
    });
  });

  const oneWay = asRecord(asRecord(root.defaults).oneWay);
  const initial = isPositiveInteger(oneWay.initialBackoffMs)
    ? oneWay.initialBackoffMs
    : DEFAULTS.oneWay.initialBackoffMs;
  const max = isPositiveInteger(oneWay.maxBackoffMs) ? oneWay.maxBackoffMs : DEFAULTS.oneWay.maxBackoffMs;
  if (max < initial) {
    const key = oneWay.maxBackoffMs === undefined ? "initialBackoffMs" : "maxBackoffMs";
    const message =
      key === "maxBackoffMs"
        ? expectedGot("smaller than initialBackoffMs", `at least ${initial}`, max)
        : expectedGot("larger than maxBackoffMs", `at most ${max}`, initial);
    report(["defaults", "oneWay", key], message);
  }

  if (root.store === "memory" && root.storeOptions !== undefined) {
    const what = 'only the sqlite store takes options (expected no storeOptions with store "memory")';
    report(["storeOptions"], what, true);
  }
}

function checkOverrides(overrides: ConfigOverrides): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const grpc = overrides.grpc === undefined ? undefined : checkListenAddress(overrides.grpc);
  if (grpc !== undefined) problems.push({ file: COMMAND_LINE, path: "--grpc", message: grpc });
  const store = overrides.store === undefined ? undefined : checkStore(overrides.store);
  if (store !== undefined) problems.push({ file: COMMAND_LINE, path: "--store", message: store });
  return problems;
}

function resolveConfig(
  file: ConfigFile,
  source: string | undefined,
  cwd: string,
  overrides: ConfigOverrides,
): BridgeConfig {
  const dir = source === undefined ? cwd : path.dirname(source);
  const synchronous = file.storeOptions?.synchronous ?? "full";
  const store =
    resolveStore(overrides.store, cwd, synchronous) ??
    resolveStore(file.store, dir, synchronous) ??
    resolveStore("sqlite", dir, synchronous);
  const { oneWay, ...limits } = file.defaults ?? {};
  const defaults: DefaultsConfig = {
    ...withDefaults(DEFAULTS, limits),
    oneWay: withDefaults(DEFAULTS.oneWay, oneWay ?? {}),
  };
  return {
    source,
    contracts: {
      importPaths: (file.contracts?.importPaths ?? (source === undefined ? [] : ["."])).map((p) =>
        path.resolve(dir, p),
      ),
      files: file.contracts?.files ?? [],
    },
    processes: (file.processes ?? []).map((p) => ({
      name: p.name,
      services: p.services,
      location: p.location,
      envelope: p.envelope ?? false,
    })),
    listeners: { grpc: overrides.grpc ?? file.listeners?.grpc ?? DEFAULT_GRPC_ADDRESS },
    store: store as StoreConfig,
    defaults,
  };
}

/** The defaults with every value the file sets (keys set to undefined keep the default). */
function withDefaults<T extends object>(
  defaults: T,
  given: { readonly [K in keyof T]?: T[K] | undefined },
): T {
  const result = { ...defaults };
  for (const key of Object.keys(given) as (keyof T)[]) {
    const value = given[key];
    if (value !== undefined) result[key] = value as T[keyof T];
  }
  return result;
}

/** "memory", "sqlite" or "sqlite:PATH" (relative to `dir`); undefined when not given. */
function resolveStore(
  value: string | undefined,
  dir: string,
  synchronous: "full" | "normal",
): StoreConfig | undefined {
  if (value === undefined) return undefined;
  if (value === "memory") return { kind: "memory" };
  const file = value === "sqlite" ? DEFAULT_SQLITE_PATH : value.slice("sqlite:".length);
  return { kind: "sqlite", path: path.resolve(dir, file), synchronous };
}

/** Offset of the node at a key path; the nearest existing ancestor when the key is absent. */
function offsetOf(contents: unknown, keyPath: KeyPath, atKey: boolean): number | undefined {
  let node = contents as Node | null | undefined;
  let offset = node?.range?.[0];
  for (const [index, segment] of keyPath.entries()) {
    let next: Node | null | undefined;
    if (isMap(node)) {
      const pair = node.items.find((item) => isScalar(item.key) && item.key.value === segment);
      if (pair === undefined) return offset;
      const key = pair.key as Node;
      if (atKey && index === keyPath.length - 1) return key.range?.[0] ?? offset;
      next = pair.value as Node | null;
      // `key:` with nothing after it: point at the key.
      offset = next?.range?.[0] ?? key.range?.[0] ?? offset;
    } else if (isSeq(node) && typeof segment === "number") {
      next = node.items[segment] as Node | undefined;
      offset = next?.range?.[0] ?? offset;
    } else {
      return offset;
    }
    node = next;
  }
  return offset;
}

/** ["processes", 0, "location"] → "processes[0].location". */
export function formatKeyPath(keyPath: KeyPath): string {
  let text = "";
  for (const segment of keyPath) {
    if (typeof segment === "number") text += `[${segment}]`;
    else text += text === "" ? String(segment) : `.${String(segment)}`;
  }
  return text;
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}
