import type { ContractSet } from "../../bridge/contracts/contract.js";

/**
 * Descriptors of everything the gRPC listener serves, for reflection: the configured
 * contracts with all their imports, the SessionService, grpc.health.v1 and
 * google.rpc.ErrorInfo, all compiled together with the contracts (loadContracts).
 */
export function reflectionDescriptors(contracts: ContractSet): Buffer[] {
  return contracts.files.map((bytes) => Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
}
