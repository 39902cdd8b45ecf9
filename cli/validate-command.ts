import { loadBridgeSetup } from "../bridge/config/check-config.js";
import { ConfigError } from "../bridge/config/config-error.js";
import { ContractError } from "../bridge/contracts/contract-error.js";
import { ExitCode } from "./exit-codes.js";

export interface ValidateOptions {
  readonly config?: string;
}

/**
 * `sessionbridge validate`: loads the configuration and its contracts exactly as `start`
 * would, without starting anything. Exit 0 when valid, 2 with every problem listed.
 */
export function validateCommand(
  options: ValidateOptions,
  out: NodeJS.WritableStream,
  err: NodeJS.WritableStream,
): number {
  try {
    const { config, contracts } = loadBridgeSetup(
      options.config === undefined ? {} : { file: options.config },
    );
    const operations = [...contracts.services.values()].reduce((n, s) => n + s.operations.length, 0);
    out.write(
      `valid: ${config.source ?? "embedded defaults"}: ${contracts.services.size} service(s), ${operations} operation(s), ` +
        `${config.processes.length} process(es), grpc ${config.listeners.grpc}, store ${describeStore(config.store)}\n`,
    );
    return ExitCode.OK;
  } catch (error) {
    if (error instanceof ConfigError || error instanceof ContractError) {
      err.write(`${error.message}\n`);
      return ExitCode.INVALID;
    }
    throw error;
  }
}

export function describeStore(store: { kind: string; path?: string }): string {
  return store.kind === "sqlite" ? `sqlite:${store.path}` : store.kind;
}
