import type protobuf from "protobufjs";
import { compileAlias } from "./compile-alias.js";
import type {
  Access,
  CompiledAlias,
  CorrelationSetContract,
  ExecutionModality,
  OperationContract,
  OperationCorrelation,
  ServiceContract,
  StartReusePolicy,
} from "./contract.js";
import type { ContractProblem } from "./contract-error.js";
import {
  hasSessionOption,
  METHOD_OPTION,
  type OptionMessage,
  type OptionValue,
  readSessionOption,
  SERVICE_OPTION,
} from "./session-options.js";

export interface ServiceSource {
  readonly service: protobuf.Service;
  /** The configured file declaring it, relative to its import path. */
  readonly file: string;
  readonly serviceType: protobuf.Type;
  readonly methodType: protobuf.Type;
}

const EXECUTION: Readonly<Record<string, ExecutionModality>> = {
  EXECUTION_MODALITY_UNSPECIFIED: "concurrent",
  EXECUTION_MODALITY_CONCURRENT: "concurrent",
  EXECUTION_MODALITY_SEQUENTIAL: "sequential",
  EXECUTION_MODALITY_SINGLE: "single",
};

const START_REUSE: Readonly<Record<string, StartReusePolicy>> = {
  START_REUSE_POLICY_UNSPECIFIED: "join",
  START_REUSE_POLICY_JOIN: "join",
  START_REUSE_POLICY_REJECT_DUPLICATE: "reject-duplicate",
};

const ACCESS: Readonly<Record<string, Access>> = {
  ACCESS_UNSPECIFIED: "exclusive",
  ACCESS_EXCLUSIVE: "exclusive",
  ACCESS_SHARED: "shared",
};

/**
 * Builds the contract of one service and reports everything wrong with its session
 * options. A service with no sessionbridge option anywhere is plain: its calls pass
 * through without sessions, so none of the session rules apply to it.
 */
export function buildService(
  source: ServiceSource,
  report: (problem: ContractProblem) => void,
): ServiceContract {
  const { service, file } = source;
  const name = service.fullName.slice(1);
  const reportService = (message: string): void => report({ file, service: name, message });
  const sessionful = hasSessionOption(service) || service.methodsArray.some(hasSessionOption);
  const options = readSessionOption(service, SERVICE_OPTION, source.serviceType, reportService) ?? {};
  const correlationSets = readCorrelationSets(options, reportService);
  const execution = EXECUTION[enumOf(options.execution)] ?? "concurrent";
  const contract: Omit<ServiceContract, "operations"> = {
    name,
    file,
    sessionful,
    execution,
    idleTimeoutMs: timeoutOf(options.idle_timeout_ms),
    maxLifetimeMs: timeoutOf(options.max_lifetime_ms),
    startReuse: START_REUSE[enumOf(options.start_reuse)] ?? "join",
    correlationSets,
  };
  const operations = service.methodsArray.map((method) => {
    const reportMethod = (message: string): void =>
      report({ file, service: name, method: method.name, message });
    return buildOperation(contract, method, source.methodType, reportMethod);
  });
  return { ...contract, operations };
}

function readCorrelationSets(
  options: OptionMessage,
  report: (message: string) => void,
): ReadonlyMap<string, CorrelationSetContract> {
  const sets = new Map<string, CorrelationSetContract>();
  for (const entry of messagesOf(options.correlation_sets)) {
    const name = stringOf(entry.name);
    if (name === "") {
      report("a correlation set has no name");
      continue;
    }
    if (sets.has(name)) {
      report(`correlation set ${name} is declared more than once`);
      continue;
    }
    const variables = stringsOf(entry.variables);
    if (variables.length === 0) report(`correlation set ${name} has no variables`);
    const seen = new Set<string>();
    for (const variable of variables) {
      if (variable === "") report(`correlation set ${name} has an empty variable name`);
      else if (seen.has(variable))
        report(`correlation set ${name} lists variable ${variable} more than once`);
      seen.add(variable);
    }
    sets.set(name, { name, variables: [...seen].filter((v) => v !== "") });
  }
  return sets;
}

function buildOperation(
  service: Omit<ServiceContract, "operations">,
  method: protobuf.Method,
  methodType: protobuf.Type,
  report: (message: string) => void,
): OperationContract {
  let optionProblems = 0;
  const options =
    readSessionOption(method, METHOD_OPTION, methodType, (message) => {
      optionProblems++;
      report(message);
    }) ?? {};
  const requestStream = method.requestStream === true;
  const responseStream = method.responseStream === true;
  const request = method.resolvedRequestType;
  const response = method.resolvedResponseType;
  const operation = {
    path: `/${service.name}/${method.name}`,
    service: service.name,
    name: method.name,
    requestType: request?.fullName.slice(1) ?? method.requestType,
    responseType: response?.fullName.slice(1) ?? method.responseType,
    requestStream,
    responseStream,
    startsSession: options.starts_session === true,
    endsSession: options.ends_session === true,
    oneWay: options.one_way === true,
    access: ACCESS[enumOf(options.access)] ?? "exclusive",
  };
  const entries = messagesOf(options.correlation);
  let correlation: OperationCorrelation | undefined;
  // Once its options are wrong, further rules would only report consequences of that.
  if (optionProblems > 0) return { ...operation, correlation };
  if (entries.length > 1) {
    const names = entries.map((entry) => stringOf(entry.set) || "(unnamed)").join(", ");
    report(
      `an operation belongs to at most one correlation set, but this one lists ${entries.length} (${names})`,
    );
  } else if (entries[0] !== undefined && request !== null) {
    correlation = readCorrelation(service, entries[0], request, report);
  }
  if (service.sessionful) checkSessionRules(service, operation, entries.length > 0, report);
  return { ...operation, correlation };
}

function readCorrelation(
  service: Omit<ServiceContract, "operations">,
  entry: OptionMessage,
  request: protobuf.Type,
  report: (message: string) => void,
): OperationCorrelation | undefined {
  const setName = stringOf(entry.set);
  const set = service.correlationSets.get(setName);
  if (set === undefined) {
    const declared = [...service.correlationSets.keys()];
    const listing = declared.length === 0 ? "it declares none" : `it declares ${declared.join(", ")}`;
    report(
      setName === ""
        ? "the correlation names no set"
        : `correlation set ${setName} is not declared on service ${service.name}; ${listing}`,
    );
    return undefined;
  }
  const byVariable = new Map<string, CompiledAlias>();
  let valid = true;
  for (const alias of messagesOf(entry.aliases)) {
    const variable = stringOf(alias.variable);
    if (!set.variables.includes(variable)) {
      report(
        `alias for variable ${variable || "(empty)"}, which set ${set.name} does not have (its variables: ${set.variables.join(", ")})`,
      );
      valid = false;
      continue;
    }
    if (byVariable.has(variable)) {
      report(`variable ${variable} of set ${set.name} has more than one alias`);
      valid = false;
      continue;
    }
    const compiled = compileAlias(request, variable, stringOf(alias.path));
    if ("problem" in compiled) {
      report(compiled.problem);
      valid = false;
      continue;
    }
    byVariable.set(variable, compiled.alias);
  }
  const named = new Set(messagesOf(entry.aliases).map((alias) => stringOf(alias.variable)));
  const aliases: CompiledAlias[] = [];
  for (const variable of set.variables) {
    const alias = byVariable.get(variable);
    if (alias !== undefined) {
      aliases.push(alias);
    } else if (!named.has(variable)) {
      // S5: a message correlates only when every variable of the set matches.
      report(
        `variable ${variable} of set ${set.name} has no alias; every variable of the set must be bound (S5)`,
      );
      valid = false;
    }
  }
  return valid ? { set: set.name, aliases } : undefined;
}

interface OperationFlags {
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly startsSession: boolean;
  readonly endsSession: boolean;
  readonly oneWay: boolean;
  readonly access: Access;
}

function checkSessionRules(
  service: Omit<ServiceContract, "operations">,
  operation: OperationFlags,
  hasCorrelation: boolean,
  report: (message: string) => void,
): void {
  if (operation.oneWay && (operation.requestStream || operation.responseStream)) {
    const streams =
      operation.requestStream && operation.responseStream
        ? "both ways"
        : operation.requestStream
          ? "its requests"
          : "its responses";
    report(`one_way applies to unary methods only, but this method streams ${streams}`);
  }
  if (operation.access === "shared" && operation.endsSession) {
    // S6: shared operations run side by side; one of them cannot end the session under the others.
    report("a shared (ACCESS_SHARED) operation cannot end the session; make it exclusive");
  }
  if (operation.startsSession) {
    if (!hasCorrelation && service.correlationSets.size > 0) {
      const sets = [...service.correlationSets.keys()].join(", ");
      report(
        `the operation starts a session but binds no correlation value, while the service declares correlation sets (${sets}); the session could not be found by correlation (S2)`,
      );
    }
  } else if (!hasCorrelation && service.execution === "concurrent") {
    report(
      "the operation is not a starter and has no correlation; in a CONCURRENT service its messages could not be routed to a session (S4)",
    );
  }
}

/** 0 in the contract means "the bridge default" (options.proto). */
function timeoutOf(value: OptionValue | undefined): number | undefined {
  return typeof value === "number" && value > 0 ? value : undefined;
}

function enumOf(value: OptionValue | undefined): string {
  return typeof value === "string" ? value : "";
}

function stringOf(value: OptionValue | undefined): string {
  return typeof value === "string" ? value : "";
}

function stringsOf(value: OptionValue | undefined): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === "string") : [];
}

function messagesOf(value: OptionValue | undefined): OptionMessage[] {
  return Array.isArray(value)
    ? value.filter((v): v is OptionMessage => typeof v === "object" && !Array.isArray(v))
    : [];
}
