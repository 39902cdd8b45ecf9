import path from "node:path";
import protobuf from "protobufjs";
import type { ContractsConfig } from "../config/config.js";
import { buildService, type ServiceSource } from "./build-service.js";
import type { ContractSet, OperationContract, ServiceContract } from "./contract.js";
import { ContractError, type ContractProblem } from "./contract-error.js";
import { findInPaths, OPTIONS_PROTO, searchPaths } from "./proto-paths.js";
import { METHOD_OPTIONS_TYPE, SERVICE_OPTIONS_TYPE } from "./session-options.js";

/**
 * Field names are kept as declared: alias paths name fields the way the .proto file
 * does, and so do the objects adapters encode and decode with this root.
 */
const PARSE_OPTIONS: protobuf.IParseOptions = { keepCase: true };

/**
 * Loads the configured .proto files, reads their sessionbridge options and validates
 * them. Every problem found is collected and thrown together as one ContractError, so a
 * contract is either wholly usable or rejected before the bridge serves anything.
 *
 * Imports resolve against the configured import paths, then the bridge's own proto/
 * directory, then the protobufjs package (for google/protobuf/descriptor.proto). Only
 * services declared in the configured files become contracts; imported files provide
 * types.
 */
export function loadContracts(config: ContractsConfig): ContractSet {
  const paths = searchPaths(config.importPaths);
  const problems: ContractProblem[] = [];
  const configured = new Map<string, string>();
  for (const file of config.files) {
    const found = findInPaths(paths, file);
    if (found === undefined) {
      problems.push({ file, message: `file not found in the import paths (searched ${paths.join(", ")})` });
    } else {
      configured.set(found, file);
    }
  }
  // Each file is parsed on its own first so that a syntax error in one neither hides
  // the problems of the others nor stops them from being validated.
  const loadable = new Map<string, string>();
  for (const [absolute, file] of configured) {
    if (createLoader(paths, problems).load(absolute, file)) loadable.set(absolute, file);
  }

  const loader = createLoader(paths, problems);
  const options = findInPaths(paths, OPTIONS_PROTO);
  if (options !== undefined) loader.load(options, OPTIONS_PROTO);
  for (const [absolute, file] of loadable) {
    if (!loader.load(absolute, file)) throw new ContractError(problems);
  }

  const root = loader.root;
  const serviceType = root.lookupType(SERVICE_OPTIONS_TYPE);
  const methodType = root.lookupType(METHOD_OPTIONS_TYPE);
  const services = new Map<string, ServiceContract>();
  const operations = new Map<string, OperationContract>();
  for (const service of servicesOf(root)) {
    const file = loadable.get(service.filename ?? "");
    if (file === undefined) continue;
    const source: ServiceSource = { service, file, serviceType, methodType };
    const contract = buildService(source, (problem) => problems.push(problem));
    services.set(contract.name, contract);
    for (const operation of contract.operations) operations.set(operation.path, operation);
  }
  if (problems.length > 0) throw new ContractError(problems);
  return { services, operations, root };
}

interface Loader {
  readonly root: protobuf.Root;
  /** Loads one file into the root; false when it failed, the failure reported as a problem. */
  load(absolute: string, file: string): boolean;
}

function createLoader(paths: readonly string[], problems: ContractProblem[]): Loader {
  const root = new protobuf.Root();
  // Absolute path → name relative to its import path, to report files as the user wrote them.
  const names = new Map<string, string>();
  let missingImports = 0;
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) return target;
    const found = findInPaths(paths, target);
    if (found === undefined) {
      missingImports++;
      const file = names.get(origin) ?? origin;
      problems.push({
        file,
        message: `import "${target}" not found in the import paths (searched ${paths.join(", ")})`,
      });
      return null;
    }
    if (!names.has(found)) names.set(found, target);
    return found;
  };
  return {
    root,
    load(absolute, file) {
      names.set(absolute, file);
      const missingBefore = missingImports;
      try {
        root.loadSync(absolute, PARSE_OPTIONS);
      } catch (error) {
        // Unresolved types after a missing import are a consequence already reported.
        if (missingImports === missingBefore) problems.push(describeLoadError(error, root, file, names));
        return false;
      }
      return missingImports === missingBefore;
    },
  };
}

/**
 * protobufjs reports parser errors as "illegal token 'x' (/abs/file.proto, line 5)", and
 * tokenizer errors as "illegal … (line 5)" without the file, which is then the one it was
 * parsing (parse.filename). Resolution errors name the type instead
 * ("no such Type or Enum 'Y' in Type .pkg.Msg"); the type knows its file.
 */
function describeLoadError(
  error: unknown,
  root: protobuf.Root,
  file: string,
  names: ReadonlyMap<string, string>,
): ContractProblem {
  const text = error instanceof Error ? error.message : String(error);
  const nameOf = (absolute: string): string => names.get(absolute) ?? absolute;
  const located = /^(.*) \((?:(.+), )?line (\d+)\)$/.exec(text);
  if (located !== null) {
    const [, what = text, where, line = "?"] = located;
    const parsing = (protobuf.parse as unknown as { filename: string | null }).filename;
    const source = where ?? parsing;
    return { file: source ? nameOf(source) : file, message: `syntax error at line ${line}: ${what}` };
  }
  const owner = / in \w+ \.([\w.]+)$/.exec(text)?.[1];
  const declaring = owner === undefined ? null : (root.lookup(owner)?.filename ?? null);
  const relative = Array.from(names).reduce((message, [abs, rel]) => message.split(abs).join(rel), text);
  return { file: declaring ? nameOf(declaring) : file, message: relative };
}

function servicesOf(namespace: protobuf.NamespaceBase): protobuf.Service[] {
  const found: protobuf.Service[] = [];
  for (const nested of namespace.nestedArray) {
    if (nested instanceof protobuf.Service) found.push(nested);
    if (nested instanceof protobuf.Namespace) found.push(...servicesOf(nested));
  }
  return found;
}
