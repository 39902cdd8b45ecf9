import { loadBridgeSetup } from "../bridge/config/check-config.js";
import { ConfigError } from "../bridge/config/config-error.js";
import { ContractError } from "../bridge/contracts/contract-error.js";
import { describeStore } from "./describe-store.js";
import { ExitCode } from "./exit-codes.js";

export interface ValidateOptions {
  readonly config?: string;
}

/**
 * `sessionbridge validate`: loads the configuration and its contracts exactly as `start`
 * would, without starting anything. Exit 0 when valid, listing the services of the
 * contracts that no process serves; 2 with every problem listed.
 */
export function validateCommand(
  options: ValidateOptions,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): number {
  try {
    const { config, contracts, unserved } = loadBridgeSetup(
      options.config === undefined ? {} : { file: options.config },
    );
    out.write(
      `valid: ${config.source ?? "embedded defaults"}: ${contracts.services.size} service(s), ${contracts.operations.size} operation(s), ` +
        `${config.processes.length} process(es), grpc ${config.listeners.grpc}, store ${describeStore(config.store)}\n`,
    );
    for (const service of unserved) {
      out.write(`not served: ${service.name} (declared in ${service.file}; no process names it)\n`);
    }
    return ExitCode.OK;
  } catch (error) {
    if (error instanceof ConfigError || error instanceof ContractError) {
      err.write(`${error.message}\n`);
      return ExitCode.INVALID;
    }
    throw error;
  }
}
