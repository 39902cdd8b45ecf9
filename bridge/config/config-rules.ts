import { checkHttpListen, checkListenAddress } from "./addresses.js";
import { DEFAULTS } from "./config.js";
import { COMMAND_LINE, type ConfigProblem, expectedGot } from "./config-error.js";
import { checkNatsUrls, checkStore } from "./config-schema.js";
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

  if (root.store === "memory" && root.storeOptions !== undefined) {
    const what = 'the memory store takes no options (expected no storeOptions with store "memory")';
    report(["storeOptions"], what, true);
  }
}

/** The command-line overrides, checked like the keys they replace. */
export function checkOverrides(overrides: ConfigOverrides): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const grpc = overrides.grpc === undefined ? undefined : checkListenAddress(overrides.grpc);
  if (grpc !== undefined) problems.push({ file: COMMAND_LINE, path: "--grpc", message: grpc });
  const http = overrides.http === undefined ? undefined : checkHttpListen(overrides.http);
  if (http !== undefined) problems.push({ file: COMMAND_LINE, path: "--http", message: http });
  const nats = overrides.nats === undefined ? undefined : checkNatsUrls(overrides.nats);
  if (nats !== undefined) problems.push({ file: COMMAND_LINE, path: "--nats", message: nats });
  const store = overrides.store === undefined ? undefined : checkStore(overrides.store);
  if (store !== undefined) problems.push({ file: COMMAND_LINE, path: "--store", message: store });
  return problems;
}

function asRecord(value: unknown): Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

function isPositiveInteger(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value > 0;
}
