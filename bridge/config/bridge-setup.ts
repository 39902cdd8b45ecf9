import type { ContractSet, OperationContract, ServiceContract } from "../contracts/contract.js";
import type { BridgeConfig, ProcessConfig } from "./config.js";
import { ConfigError, type ConfigProblem, sortConfigProblems } from "./config-error.js";
import type { LocatedConfig } from "./load-config.js";

/** A configuration together with the contracts it loads, checked against each other. */
export interface BridgeSetup {
  /** The configuration, each process's `package.*` patterns replaced by the services they match. */
  readonly config: BridgeConfig;
  /** The contracts of the services some process serves: what the bridge exposes. */
  readonly contracts: ContractSet;
  /**
   * Services of the configured files that no process names: they are not served (the
   * runtime says so, one line each, and `validate` lists them).
   */
  readonly unserved: readonly ServiceContract[];
}

/**
 * Checks a loaded configuration against its contracts: every service a process names
 * exists in the contracts, every `package.*` pattern matches at least one service, and no
 * service is served by two processes, so every served operation has one place to go. A
 * contract file may declare more services than the configuration exposes: those without
 * a process are left out of the returned contracts. Throws ConfigError with the place of
 * the process entry. Apart from loading (check-config.ts), so that a caller holding a
 * configuration loaded elsewhere needs neither the YAML parser nor the schema.
 */
export function checkBridgeSetup(located: LocatedConfig, contracts: ContractSet): BridgeSetup {
  const { problems, servedBy } = checkServing(located, contracts);
  if (problems.length > 0) throw new ConfigError(sortConfigProblems(problems));
  const processes: ProcessConfig[] = located.config.processes.map((process) => ({
    ...process,
    services: [...servedBy].filter(([, name]) => name === process.name).map(([service]) => service),
  }));
  const served = [...contracts.services.values()].filter((s) => servedBy.has(s.name));
  const operations = new Map<string, OperationContract>();
  for (const service of served) for (const op of service.operations) operations.set(op.path, op);
  return {
    config: { ...located.config, processes },
    contracts: { ...contracts, services: new Map(served.map((s) => [s.name, s])), operations },
    unserved: [...contracts.services.values()].filter((s) => !servedBy.has(s.name)),
  };
}

/** The suffix of a pattern naming every service of a package. */
const PACKAGE_WILDCARD = ".*";

interface Serving {
  readonly problems: ConfigProblem[];
  /** Service full name → the process that serves it, in the order processes claim them. */
  readonly servedBy: Map<string, string>;
}

function checkServing(located: LocatedConfig, contracts: ContractSet): Serving {
  const { config } = located;
  const problems: ConfigProblem[] = [];
  const servedBy = new Map<string, string>();
  const declared = (): string => {
    const known = [...contracts.services.keys()];
    return known.length === 0 ? "the configured files declare none" : `declared: ${known.join(", ")}`;
  };
  config.processes.forEach((process, index) => {
    process.services.forEach((entry, i) => {
      const keyPath = ["processes", index, "services", i];
      const place = { ...located.placeOf(keyPath), path: `processes[${index}].services[${i}]` };
      const report = (message: string): void => {
        problems.push({ ...place, message });
      };
      let matched: ServiceContract[];
      if (entry.endsWith(PACKAGE_WILDCARD)) {
        const pkg = entry.slice(0, -PACKAGE_WILDCARD.length);
        matched = [...contracts.services.values()].filter((s) => packageOf(s.name) === pkg);
        if (matched.length === 0) {
          report(
            `pattern ${entry} of process ${process.name} matches no service of the contracts (${declared()})`,
          );
          return;
        }
      } else {
        const service = contracts.services.get(entry);
        if (service === undefined) {
          report(`service ${entry} of process ${process.name} is not in the contracts (${declared()})`);
          return;
        }
        matched = [service];
      }
      for (const service of matched) claim(service, process, servedBy, report);
    });
  });
  return { problems, servedBy };
}

function claim(
  service: ServiceContract,
  process: ProcessConfig,
  servedBy: Map<string, string>,
  report: (message: string) => void,
): void {
  const first = servedBy.get(service.name);
  if (first === process.name) return;
  if (first !== undefined) {
    report(
      `service ${service.name} is served by processes ${first} and ${process.name}; each service needs exactly one`,
    );
    return;
  }
  servedBy.set(service.name, process.name);
  // An envelope-native process answers one Envelope per call: no streams (process.proto).
  const streaming = process.envelope
    ? service.operations.filter((op) => op.requestStream || op.responseStream)
    : [];
  if (streaming.length > 0) {
    report(
      `process ${process.name} is envelope-native (envelope: true) but ${service.name} has streaming operations (${streaming.map((op) => op.name).join(", ")}); envelope-native processes serve unary operations only`,
    );
  }
}

/** "examples.orders.v1.Orders" → "examples.orders.v1" (a service is always directly in its package). */
function packageOf(service: string): string {
  const dot = service.lastIndexOf(".");
  return dot < 0 ? "" : service.slice(0, dot);
}
