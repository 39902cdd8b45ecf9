import pino from "pino";
import { loadBridgeSetup } from "../bridge/config/check-config.js";
import { ConfigError } from "../bridge/config/config-error.js";
import type { ConfigOverrides } from "../bridge/config/load-config.js";
import { ContractError } from "../bridge/contracts/contract-error.js";
import { startBridgeRuntime } from "./bridge-runtime.js";
import { ExitCode } from "./exit-codes.js";
import { describeStore } from "./validate-command.js";

export interface StartOptions {
  readonly config?: string;
  readonly grpc?: string;
  readonly store?: string;
  readonly drainMs: number;
}

/**
 * `sessionbridge start`: runs the bridge until SIGTERM or SIGINT, then drains: health
 * turns NOT_SERVING, calls in flight finish (up to --drain-ms), undelivered one-way
 * messages stay journaled for the next start (S10), the store closes. Logs structured
 * JSON lines on stdout.
 */
export async function startCommand(options: StartOptions, err: NodeJS.WritableStream): Promise<number> {
  const logger = pino({ name: "sessionbridge" });
  const overrides: ConfigOverrides = {
    ...(options.grpc === undefined ? {} : { grpc: options.grpc }),
    ...(options.store === undefined ? {} : { store: options.store }),
  };
  let setup: ReturnType<typeof loadBridgeSetup>;
  try {
    setup = loadBridgeSetup({ ...(options.config === undefined ? {} : { file: options.config }), overrides });
  } catch (error) {
    if (error instanceof ConfigError || error instanceof ContractError) {
      err.write(`${error.message}\n`);
      return ExitCode.INVALID;
    }
    throw error;
  }
  const { config, contracts } = setup;
  const runtime = await startBridgeRuntime({ config, contracts, logger });
  logger.info(
    {
      grpc: runtime.grpc.address,
      store: describeStore(config.store),
      config: config.source ?? "embedded defaults",
      services: [...contracts.services.keys()],
    },
    "sessionbridge ready",
  );
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once("SIGTERM", () => resolve("SIGTERM"));
    process.once("SIGINT", () => resolve("SIGINT"));
  });
  logger.info({ signal, drainMs: options.drainMs }, "draining");
  await runtime.stop(options.drainMs);
  logger.info({}, "stopped");
  return ExitCode.OK;
}
