import type { DescMessage, DescMethod, DescService } from "@bufbuild/protobuf";
import { MethodOptions_IdempotencyLevel } from "@bufbuild/protobuf/wkt";
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
import type { MethodOptionValue, ServiceOptionValue, SessionOptions } from "./session-options.js";

export interface ServiceSource {
  readonly service: DescService;
  /** The configured file declaring it, relative to its import path. */
  readonly file: string;
  readonly options: SessionOptions;
}

/** By enum number (options.proto): ExecutionModality, StartReusePolicy, Access. */
const EXECUTION: readonly ExecutionModality[] = ["concurrent", "concurrent", "sequential", "single"];
const START_REUSE: readonly StartReusePolicy[] = ["join", "join", "reject-duplicate"];
const ACCESS: readonly Access[] = ["exclusive", "exclusive", "shared"];

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
  const name = service.typeName;
  const servicePlace = { file, ...source.options.position(service), service: name };
  const reportService = (message: string): void => report({ ...servicePlace, message });
  const methodOptions = new Map(service.methods.map((m) => [m, source.options.method(m)]));
  const serviceOptions = source.options.service(service);
  const sessionful = serviceOptions !== undefined || [...methodOptions.values()].some((o) => o !== undefined);
  const correlationSets = readCorrelationSets(serviceOptions?.correlationSets ?? [], reportService);
  const contract: Omit<ServiceContract, "operations"> = {
    name,
    file,
    sessionful,
    execution: enumOf(EXECUTION, serviceOptions?.execution, "execution", reportService) ?? "concurrent",
    idleTimeoutMs: timeoutOf(serviceOptions?.idleTimeoutMs, "idle_timeout_ms", reportService),
    maxLifetimeMs: timeoutOf(serviceOptions?.maxLifetimeMs, "max_lifetime_ms", reportService),
    startReuse: enumOf(START_REUSE, serviceOptions?.startReuse, "start_reuse", reportService) ?? "join",
    correlationSets,
  };
  const operations = service.methods.map((method) => {
    const methodPlace = { file, ...source.options.position(method), service: name, method: method.name };
    const reportMethod = (message: string): void => report({ ...methodPlace, message });
    return buildOperation(contract, method, methodOptions.get(method), reportMethod);
  });
  return { ...contract, operations };
}

function readCorrelationSets(
  entries: ServiceOptionValue["correlationSets"],
  report: (message: string) => void,
): ReadonlyMap<string, CorrelationSetContract> {
  const sets = new Map<string, CorrelationSetContract>();
  for (const entry of entries) {
    const name = entry.name;
    if (name === "") {
      report("a correlation set has no name");
      continue;
    }
    if (sets.has(name)) {
      report(`correlation set ${name} is declared more than once`);
      continue;
    }
    const variables = entry.variables;
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
  method: DescMethod,
  options: MethodOptionValue | undefined,
  report: (message: string) => void,
): OperationContract {
  let optionProblems = 0;
  const reportOption = (message: string): void => {
    optionProblems++;
    report(message);
  };
  const requestStream = method.methodKind === "client_streaming" || method.methodKind === "bidi_streaming";
  const responseStream = method.methodKind === "server_streaming" || method.methodKind === "bidi_streaming";
  const operation = {
    path: `/${service.name}/${method.name}`,
    service: service.name,
    name: method.name,
    requestType: method.input.typeName,
    responseType: method.output.typeName,
    requestStream,
    responseStream,
    startsSession: options?.startsSession === true,
    endsSession: options?.endsSession === true,
    oneWay: options?.oneWay === true,
    access: enumOf(ACCESS, options?.access, "access", reportOption) ?? "exclusive",
    noSideEffects: method.idempotency === MethodOptions_IdempotencyLevel.NO_SIDE_EFFECTS,
  };
  const entries = options?.correlation ?? [];
  let correlation: OperationCorrelation | undefined;
  // Once its options are wrong, further rules would only report consequences of that.
  if (optionProblems > 0) return { ...operation, correlation };
  if (entries.length > 1) {
    const names = entries.map((entry) => entry.set || "(unnamed)").join(", ");
    report(
      `an operation belongs to at most one correlation set, but this one lists ${entries.length} (${names})`,
    );
  } else if (entries[0] !== undefined) {
    correlation = readCorrelation(service, entries[0], method.input, report);
  }
  if (service.sessionful) checkSessionRules(service, operation, entries.length > 0, report);
  return { ...operation, correlation };
}

function readCorrelation(
  service: Omit<ServiceContract, "operations">,
  entry: MethodOptionValue["correlation"][number],
  request: DescMessage,
  report: (message: string) => void,
): OperationCorrelation | undefined {
  const setName = entry.set;
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
  for (const alias of entry.aliases) {
    const variable = alias.variable;
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
    const compiled = compileAlias(request, variable, alias.path);
    if ("problem" in compiled) {
      report(compiled.problem);
      valid = false;
      continue;
    }
    byVariable.set(variable, compiled.alias);
  }
  const named = new Set(entry.aliases.map((alias) => alias.variable));
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

/**
 * 0 in the contract means "the bridge default" (options.proto). Milliseconds beyond 2^53
 * (285 000 years) cannot be held exactly by a timer, so they are refused.
 */
function timeoutOf(
  value: bigint | undefined,
  field: string,
  report: (message: string) => void,
): number | undefined {
  if (value === undefined || value <= 0n) return undefined;
  if (value > BigInt(Number.MAX_SAFE_INTEGER)) {
    report(
      `option field ${field} is too large to represent exactly (uint64, at most ${Number.MAX_SAFE_INTEGER})`,
    );
    return undefined;
  }
  return Number(value);
}

/** An enum option by number; a number options.proto does not declare is reported. */
function enumOf<T>(
  values: readonly T[],
  value: number | undefined,
  field: string,
  report: (message: string) => void,
): T | undefined {
  if (value === undefined) return undefined;
  const known = values[value];
  if (known === undefined) report(`option field ${field} has the unknown enum value ${value}`);
  return known;
}
