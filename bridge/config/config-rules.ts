import { checkHttpListen, checkListenAddress } from "./addresses.js";
import { type BridgeConfig, DEFAULTS } from "./config.js";
import { COMMAND_LINE, type ConfigProblem, expectedGot } from "./config-error.js";
import { checkNatsUrls, checkStore, REPLICA_EXPECTED, REPLICA_NAME } from "./config-schema.js";
import type { ConfigOverrides } from "./resolve-config.js";
import type { KeyPath } from "./yaml-places.js";

export type ReportAt = (keyPath: KeyPath, message: string, atKey?: boolean) => void;

/** Rules that relate several keys; run on the raw document so they report even when other keys are wrong. */
export function checkAcrossKeys(raw: unknown, report: ReportAt): void {
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

  checkStoreOptions(root, report);
}

/**
 * Each store takes its own options: the memory store only maxMemoryBytes, which no other
 * store takes (a file without `store` uses SQLite).
 */
function checkStoreOptions(root: Record<string, unknown>, report: ReportAt): void {
  if (root.storeOptions === undefined) return;
  const options = asRecord(root.storeOptions);
  const store = typeof root.store === "string" ? root.store : "sqlite";
  if (store === "memory") {
    for (const key of Object.keys(options)) {
      if (key === "maxMemoryBytes") continue;
      const what = 'not an option of the memory store (expected only maxMemoryBytes with store "memory")';
      report(["storeOptions", key], what, true);
    }
  } else if (options.maxMemoryBytes !== undefined) {
    const what = `an option of the memory store only (expected no maxMemoryBytes with store ${JSON.stringify(store)})`;
    report(["storeOptions", "maxMemoryBytes"], what, true);
  }
}

/** The command-line overrides, checked like the keys they replace. */
export function checkOverrides(overrides: ConfigOverrides): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const grpc = overrides.grpc === undefined ? undefined : checkListenAddress(overrides.grpc);
  if (grpc !== undefined) problems.push({ file: COMMAND_LINE, path: "--grpc", message: grpc });
  const http = overrides.http === undefined ? undefined : checkHttpListen(overrides.http);
  if (http !== undefined) problems.push({ file: COMMAND_LINE, path: "--http", message: http });
  if ((overrides.httpTlsCert === undefined) !== (overrides.httpTlsKey === undefined)) {
    const [given, missing] =
      overrides.httpTlsCert === undefined
        ? ["--http-tls-key", "--http-tls-cert"]
        : ["--http-tls-cert", "--http-tls-key"];
    problems.push({ file: COMMAND_LINE, path: given, message: `${given} needs ${missing} as well` });
  }
  const nats = overrides.nats === undefined ? undefined : checkNatsUrls(overrides.nats);
  if (nats !== undefined) problems.push({ file: COMMAND_LINE, path: "--nats", message: nats });
  const store = overrides.store === undefined ? undefined : checkStore(overrides.store);
  if (store !== undefined) problems.push({ file: COMMAND_LINE, path: "--store", message: store });
  if (overrides.replica !== undefined && !REPLICA_NAME.test(overrides.replica)) {
    const message = expectedGot("invalid replica name", REPLICA_EXPECTED, overrides.replica);
    problems.push({ file: COMMAND_LINE, path: "--replica", message });
  }
  return problems;
}

/**
 * Several replicas share sessions only through the JetStream store (DESIGN §7), and each
 * needs a name: checked on the resolved configuration, since --store and --replica may
 * supply either half.
 */
export function checkCluster(config: BridgeConfig): string | undefined {
  if (config.cluster === undefined) return undefined;
  if (config.store.kind !== "jetstream") {
    return `several replicas share sessions only through the jetstream store (expected store: jetstream with cluster, got store: ${config.store.kind})`;
  }
  if (config.cluster.replica === "") {
    return `required key missing (expected cluster.replica or --replica: ${REPLICA_EXPECTED})`;
  }
  return undefined;
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}
