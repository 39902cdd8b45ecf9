import path from "node:path";
import { protoPath as healthProtoPath } from "grpc-health-check";
import protobuf from "protobufjs";
import type { ContractsConfig } from "../../bridge/config/config.js";
import { findInPaths, searchPaths } from "../../bridge/contracts/proto-paths.js";
import { fileDescriptorProtos } from "./file-descriptors.js";
import { errorInfoDescriptor } from "./rich-status.js";

const SESSION_PROTO = "sessionbridge/v1/session.proto";
const HEALTH_PROTO = "health/v1/health.proto";

/**
 * Descriptors of everything the gRPC listener serves, for reflection: the configured
 * contracts, the SessionService and grpc.health.v1.Health, with all their imports.
 */
export function reflectionDescriptors(contracts: ContractsConfig): Buffer[] {
  // grpc-health-check ships health.proto as <dir>/health/v1/health.proto.
  const healthDir = path.resolve(path.dirname(healthProtoPath), "../..");
  const paths = [...searchPaths(contracts.importPaths), healthDir];
  const root = new protobuf.Root();
  root.resolvePath = (_origin, target) => findInPaths(paths, target) ?? target;
  root.loadSync([...contracts.files, SESSION_PROTO, HEALTH_PROTO], { keepCase: true });
  root.resolveAll();
  // google.rpc.ErrorInfo goes last: a contract that imports the real file keeps its own.
  return [...fileDescriptorProtos(root, paths), errorInfoDescriptor()];
}
