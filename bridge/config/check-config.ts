import type { ContractSet } from "../contracts/contract.js";
import { loadContracts } from "../contracts/load-contracts.js";
import type { BridgeConfig } from "./config.js";
import { ConfigError, type ConfigProblem, sortConfigProblems } from "./config-error.js";
import { type LoadConfigOptions, type LocatedConfig, loadLocatedConfig } from "./load-config.js";

/** A configuration together with the contracts it loads, checked against each other. */
export interface BridgeSetup {
  readonly config: BridgeConfig;
  readonly contracts: ContractSet;
}

/**
 * Loads the configuration and its contracts and checks that they fit: every service a
 * process names exists in the contracts, and every service of the configured files is
 * served by exactly one process, so every operation has one place to go. This is what
 * `sessionbridge validate` and `sessionbridge start` run. Throws ConfigError (config
 * problems, with the place of the process entry) or ContractError (contract problems).
 */
export function loadBridgeSetup(options: LoadConfigOptions = {}): BridgeSetup {
  const located = loadLocatedConfig(options);
  const contracts = loadContracts(located.config.contracts);
  const problems = checkServing(located, contracts);
  if (problems.length > 0) throw new ConfigError(sortConfigProblems(problems));
  return { config: located.config, contracts };
}

function checkServing(located: LocatedConfig, contracts: ContractSet): ConfigProblem[] {
  const { config } = located;
  const problems: ConfigProblem[] = [];
  const servedBy = new Map<string, string>();
  config.processes.forEach((process, index) => {
    process.services.forEach((service, i) => {
      const keyPath = ["processes", index, "services", i];
      const place = { ...located.placeOf(keyPath), path: `processes[${index}].services[${i}]` };
      if (!contracts.services.has(service)) {
        const known = [...contracts.services.keys()];
        const listing =
          known.length === 0 ? "the configured files declare none" : `declared: ${known.join(", ")}`;
        problems.push({
          ...place,
          message: `service ${service} of process ${process.name} is not in the contracts (${listing})`,
        });
        return;
      }
      // An envelope-native process answers one Envelope per call: no streams (process.proto).
      const streaming = process.envelope
        ? contracts.services.get(service)?.operations.filter((op) => op.requestStream || op.responseStream)
        : undefined;
      if (streaming !== undefined && streaming.length > 0) {
        problems.push({
          ...place,
          message: `process ${process.name} is envelope-native (envelope: true) but ${service} has streaming operations (${streaming.map((op) => op.name).join(", ")}); envelope-native processes serve unary operations only`,
        });
      }
      const first = servedBy.get(service);
      if (first === undefined) {
        servedBy.set(service, process.name);
      } else if (first !== process.name) {
        problems.push({
          ...place,
          message: `service ${service} is served by processes ${first} and ${process.name}; each service needs exactly one`,
        });
      }
    });
  });
  for (const service of contracts.services.values()) {
    if (servedBy.has(service.name)) continue;
    const index = config.contracts.files.indexOf(service.file);
    const keyPath = index < 0 ? ["processes"] : ["contracts", "files", index];
    problems.push({
      ...located.placeOf(keyPath),
      path: index < 0 ? "processes" : `contracts.files[${index}]`,
      message: `service ${service.name} (declared in ${service.file}) is served by no process`,
    });
  }
  return problems;
}
