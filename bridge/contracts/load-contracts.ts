import path from "node:path";
import { createFileRegistry, fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, WireType } from "@bufbuild/protobuf/wire";
import { FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import type { ContractsConfig } from "../config/config.js";
import { compileProtos } from "./buf-compiler.js";
import { buildService } from "./build-service.js";
import type { ContractSet, OperationContract, ServiceContract } from "./contract.js";
import { ContractError, type ContractProblem, formatContractProblem } from "./contract-error.js";
import { type ImportClosure, resolveImportClosure } from "./import-closure.js";
import { OPTIONS_PROTO, searchPaths } from "./proto-paths.js";
import { ERROR_DETAILS_PROTO, HEALTH_PROTO, SERVED_PROTOS, SESSION_PROTO } from "./served-protos.js";
import { sessionOptions } from "./session-options.js";
import { withoutSourceInfo } from "./source-positions.js";

/** Compiled with every contract: the option declarations and what the bridge serves itself. */
const BRIDGE_FILES = [OPTIONS_PROTO, SESSION_PROTO, HEALTH_PROTO, ERROR_DETAILS_PROTO];

/**
 * Compiles the configured .proto files with buf, reads their sessionbridge options and
 * validates them. Every problem found is collected and thrown together as one
 * ContractError, so a contract is either wholly usable or rejected before the bridge
 * serves anything.
 *
 * Imports resolve as protoc's -I does: the configured import paths in order, then the
 * bridge's own proto/ directory, the first directory holding a file winning;
 * google/protobuf/*.proto are the compiler's. Only services declared in the configured
 * files become contracts; imported files provide types.
 */
export function loadContracts(config: ContractsConfig): ContractSet {
  const paths = searchPaths(config.importPaths);
  const problems: ContractProblem[] = [];
  // By import name ("a/b.proto"), the name as the configuration writes it ("./a/b.proto").
  const configured = new Map<string, string>();
  for (const file of config.files) configured.set(path.posix.normalize(file.split(path.sep).join("/")), file);
  const asWritten = (file: string): string => configured.get(file) ?? file;
  const report = (problem: ContractProblem): void => {
    problems.push({ ...problem, file: asWritten(problem.file) });
  };

  const roots = [...configured.keys(), ...BRIDGE_FILES.filter((f) => !configured.has(f))];
  const closure = resolveImportClosure(roots, paths, SERVED_PROTOS, report);
  const complete = new Map([...closure.files].filter(([name]) => !closure.incomplete.has(name)));
  let targets = roots.filter((name) => complete.has(name));
  let compiled = compileProtos(complete, targets);
  if (compiled.problems.length > 0) {
    for (const problem of compiled.problems) report(problem);
    // A file that does not compile must not hide the problems of the others: compile
    // again without it and whatever imports it, and validate what is left.
    const broken = new Set(compiled.problems.map((p) => p.file));
    targets = targets.filter((name) => !dependsOn(name, broken, closure));
    const reported = new Set(compiled.problems.map(formatContractProblem));
    compiled = targets.some((name) => configured.has(name))
      ? compileProtos(complete, targets)
      : { descriptorSet: undefined, problems: [] };
    for (const problem of compiled.problems)
      if (!reported.has(formatContractProblem(problem))) report(problem);
  }
  if (compiled.descriptorSet === undefined) throw new ContractError(problems);

  const descriptorSet = fromBinary(FileDescriptorSetSchema, compiled.descriptorSet);
  const registry = createFileRegistry(descriptorSet);
  const options = sessionOptions(registry);
  const services = new Map<string, ServiceContract>();
  const operations = new Map<string, OperationContract>();
  for (const [name, file] of configured) {
    for (const service of registry.getFile(name)?.services ?? []) {
      const contract = buildService({ service, file, options }, (problem) => problems.push(problem));
      services.set(contract.name, contract);
      for (const operation of contract.operations) operations.set(operation.path, operation);
    }
  }
  if (problems.length > 0) throw new ContractError(problems);
  return { services, operations, registry, files: fileBytes(compiled.descriptorSet).map(withoutSourceInfo) };
}

/** The encoded FileDescriptorProtos of a FileDescriptorSet (field 1), as they are: no re-encoding. */
function fileBytes(descriptorSet: Uint8Array): Uint8Array[] {
  const files: Uint8Array[] = [];
  const reader = new BinaryReader(descriptorSet);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === WireType.LengthDelimited) files.push(reader.bytes());
    else reader.skip(wireType);
  }
  return files;
}

/** Whether `file` is one of `broken` or imports one of them, directly or not. */
function dependsOn(file: string, broken: ReadonlySet<string>, closure: ImportClosure): boolean {
  const seen = new Set<string>();
  const visit = (name: string): boolean => {
    if (broken.has(name)) return true;
    if (seen.has(name)) return false;
    seen.add(name);
    return (closure.files.get(name)?.imports ?? []).some((i) => visit(i.target));
  };
  return visit(file);
}
