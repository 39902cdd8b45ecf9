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
 *   http: 127.0.0.1:8080            # optional: the HTTP listener (Connect); absent = not started
 *   httpTls: { certFile: cert.pem, keyFile: key.pem }   # optional: HTTPS (relative to the config file)
 *   nats:                           # optional: NATS inbound and nats:// processes (docs/nats.md)
 *     url: nats://127.0.0.1:4222    # comma-separated for several servers; tls:// for TLS
 *     prefix: sb                    # inbound subjects <prefix>.<package.Service>.<Method>
 *     queue: sessionbridge          # queue group shared by replicas
 *     token: s3cret                 # or user + password, or credsFile, or nkeyFile
 *     tls: { caFile: ca.pem, certFile: cert.pem, keyFile: key.pem }   # paths relative to the config file
 * store: sqlite:.sessionbridge/sessions.db   # or "memory"; sqlite path relative to the config file
 * storeOptions: { synchronous: full }        # optional: full | normal (sqlite only)
 * # storeOptions: { maxMemoryBytes: 268435456 }   # memory only: what it may hold (default 256 MiB)
 * # store: jetstream:PREFIX                  # NATS JetStream, PREFIX default "sb"; storeOptions
 * #                                          # url (default: the listeners.nats connection), replicas
 * defaults:                                   # every key optional; positive integers
 *   idleTimeoutMs: 1800000
 *   maxLifetimeMs: 86400000
 *   idempotencyRetentionMs: 86400000
 *   sessionRetentionMs: 86400000
 *   maxPayloadBytes: 4194304
 *   maxCorrelationValueBytes: 1024
 *   oneWay: { maxAttempts: 5, initialBackoffMs: 200, maxBackoffMs: 10000, attemptTimeoutMs: 10000 }
 * ```
 *
 * Without a file, ./sessionbridge.yaml is used when it exists, otherwise the embedded
 * defaults: no contracts, no processes, gRPC on 127.0.0.1:50051 and the SQLite store at
 * .sessionbridge/sessions.db under the working directory. A file that names no store
 * (or just `sqlite`) gets that same database under the working directory. Command-line overrides (`--grpc`, `--http`, `--http-tls-cert`/`--http-tls-key`, `--nats URL`,
 * `--store memory|sqlite:PATH`, a path relative to the working directory) win over the
 * file. Every problem is reported, each as `FILE:LINE:COL: path.to.key: what is wrong
 * (expected …, got …)`, together in one ConfigError.
 */
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { LineCounter, parseDocument } from "yaml";
import type * as z from "zod";
import { closestName } from "../util/did-you-mean.js";
import type { BridgeConfig } from "./config.js";
import { COMMAND_LINE, ConfigError, type ConfigProblem, sortConfigProblems } from "./config-error.js";
import { checkAcrossKeys, checkCluster, checkOverrides } from "./config-rules.js";
import { configFileSchema } from "./config-schema.js";
import { type ConfigOverrides, resolveConfig } from "./resolve-config.js";
import { formatKeyPath, type KeyPath, offsetOf } from "./yaml-places.js";

export type { ConfigOverrides } from "./resolve-config.js";
export type { KeyPath } from "./yaml-places.js";

/** The file looked for in the working directory when none is given. */
export const DEFAULT_CONFIG_FILE = "sessionbridge.yaml";

export interface LoadConfigOptions {
  /** The config file; relative to cwd. */
  readonly file?: string;
  readonly overrides?: ConfigOverrides;
  /** The working directory; process.cwd() by default. */
  readonly cwd?: string;
  /**
   * The HTTP listener's address when neither the file nor the overrides name one
   * (`sessionbridge start` passes DEFAULT_HTTP_ADDRESS); none by default.
   */
  readonly defaultHttp?: string;
}

/** A place in the config file, for problems found after loading (check-config). */
export interface ConfigPlace {
  readonly file: string;
  readonly line?: number;
  readonly column?: number;
}

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
    const config = resolveConfig({}, undefined, cwd, overrides, options.defaultHttp);
    const cluster = checkCluster(config);
    if (cluster !== undefined)
      throw new ConfigError([{ file: COMMAND_LINE, path: "--replica", message: cluster }]);
    return { config, placeOf: () => ({ file: "(embedded defaults)" }) };
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
  const config = resolveConfig(parsed.data, source, cwd, overrides, options.defaultHttp);
  const cluster = checkCluster(config);
  if (cluster !== undefined) {
    const keyPath = parsed.data.cluster === undefined ? [] : ["cluster"];
    throw new ConfigError([
      { ...placeOf(keyPath, true), path: formatKeyPath(keyPath) || "--replica", message: cluster },
    ]);
  }
  return { config, placeOf: (keyPath) => placeOf(keyPath) };
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
