import protobuf from "protobufjs";
import type { ContractsConfig } from "../../bridge/config/config.js";
import { findInPaths, searchPaths } from "../../bridge/contracts/proto-paths.js";
import { errorInfoDescriptor } from "./error-info-descriptor.js";
import { fileDescriptorProtos } from "./file-descriptors.js";
import { healthDescriptor } from "./health-service.js";

const SESSION_PROTO = "sessionbridge/v1/session.proto";

/**
 * Descriptors of everything the gRPC listener serves, for reflection: the configured
 * contracts and the SessionService with all their imports, grpc.health.v1 and
 * google.rpc.ErrorInfo. The last two go last: a contract that imports the real files
 * keeps its own.
 */
export function reflectionDescriptors(contracts: ContractsConfig): Buffer[] {
  const paths = searchPaths(contracts.importPaths);
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => findInPaths(paths, target) ?? target;
  root.loadSync([...contracts.files, SESSION_PROTO], { keepCase: true });
  root.resolveAll();
  return [...fileDescriptorProtos(root, paths), healthDescriptor(), errorInfoDescriptor()];
}
