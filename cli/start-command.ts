import pino from "pino";
import { installLeanAsyncBind } from "../adapters/grpc/async-bind.js";
import type { BridgeSetup } from "../bridge/config/bridge-setup.js";
import { DEFAULT_HTTP_ADDRESS } from "../bridge/config/config.js";
import { ConfigError } from "../bridge/config/config-error.js";
import type { ConfigOverrides } from "../bridge/config/load-config.js";
import { ContractError } from "../bridge/contracts/contract-error.js";
import type { Logger } from "../bridge/logger.js";
import { startBridgeRuntime } from "./bridge-runtime.js";
import { describeStore } from "./describe-store.js";
import { ExitCode } from "./exit-codes.js";
import { startIdleMemoryReducer } from "./idle-memory.js";
import { loadBridgeSetupOffThread } from "./off-thread-setup.js";

export interface StartOptions {
  readonly config?: string;
  readonly grpc?: string;
  readonly http?: string;
  readonly httpTlsCert?: string;
  readonly httpTlsKey?: string;
  readonly store?: string;
  readonly nats?: string;
  readonly replica?: string;
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
    ...(options.http === undefined ? {} : { http: options.http }),
    ...(options.httpTlsCert === undefined ? {} : { httpTlsCert: options.httpTlsCert }),
    ...(options.httpTlsKey === undefined ? {} : { httpTlsKey: options.httpTlsKey }),
    ...(options.store === undefined ? {} : { store: options.store }),
    ...(options.nats === undefined ? {} : { nats: options.nats }),
    ...(options.replica === undefined ? {} : { replica: options.replica }),
  };
  let setup: BridgeSetup;
  try {
    // HTTP is on by default for the bridge a user starts (`--http off` or `listeners.http: off`
    // turns it off); the library leaves it to the configuration.
    // Off the bridge's thread: the code that reads the file is not kept for the bridge's life.
    setup = await loadBridgeSetupOffThread({
      ...(options.config === undefined ? {} : { file: options.config }),
      overrides,
      defaultHttp: DEFAULT_HTTP_ADDRESS,
    });
  } catch (error) {
    if (error instanceof ConfigError || error instanceof ContractError) {
      err.write(`${error.message}\n`);
      return ExitCode.INVALID;
    }
    throw error;
  }
  const { config, contracts } = setup;
  for (const service of setup.unserved) {
    logger.info({ service: service.name }, "service not served: no process is configured for it");
  }
  // The bridge's own process: every outbound gRPC call opens an HTTP/2 stream, whose setup
  // binds an AsyncResource; the lean bind (adapters/grpc/async-bind.ts) saves two
  // util.deprecate wrappers per call. Only the command installs it: a program that embeds
  // the library keeps Node's own.
  installLeanAsyncBind();
  const runtime = await startBridgeRuntime({ config, contracts, logger });
  logger.info(
    {
      grpc: runtime.grpc.address,
      ...(runtime.http === undefined ? {} : { http: runtime.http.address }),
      ...(runtime.nats === undefined
        ? {}
        : { nats: { url: config.listeners.nats?.url, prefix: runtime.nats.address } }),
      store: describeStore(config.store),
      ...(config.cluster === undefined
        ? {}
        : { replica: config.cluster.replica, partitions: config.cluster.partitions }),
      config: config.source ?? "embedded defaults",
      services: [...contracts.services.keys()],
    },
    "sessionbridge ready",
  );
  // Gives back what start-up grew the heap to once nobody is calling, and again after a
  // burst of calls (idle-memory.ts): an idle bridge holds the same in every start.
  const idleMemory = startIdleMemoryReducer({
    inflightCalls: () => runtime.bridge.stats().inflightCalls,
    callsStarted: () => runtime.bridge.stats().callsStarted,
    logger,
  });
  const signal = await shutdownSignals(logger, () => {
    const { inflightCalls, oneWayDeliveries } = runtime.bridge.stats();
    return { inflightCalls, oneWayDeliveries };
  });
  idleMemory.stop();
  logger.info({ signal: signal.name, drainMs: options.drainMs }, "draining");
  try {
    await runtime.stop(options.drainMs);
  } finally {
    signal.done();
  }
  logger.info({}, "stopped");
  return ExitCode.OK;
}

/** The first shutdown signal; `done()` stops listening once the drain is over. */
interface ShutdownSignal {
  readonly name: NodeJS.Signals;
  done(): void;
}

/**
 * Waits for SIGTERM or SIGINT and keeps listening through the drain. Ctrl-C reaches every
 * process of the terminal's process group, and launchers such as npm forward it once
 * more, so one key press can arrive twice: a second signal is only logged, because
 * killing the bridge mid-drain would abandon calls it is finishing (S9). A third forces
 * the exit at once and says what is left: calls in flight get no answer from this
 * bridge, one-way messages not yet delivered stay journaled and go out on the next
 * start (S10).
 */
function shutdownSignals(logger: Logger, pending: () => Record<string, number>): Promise<ShutdownSignal> {
  return new Promise((resolve) => {
    let received = 0;
    const onSignal = (name: NodeJS.Signals): void => {
      received += 1;
      if (received === 1) {
        resolve({ name, done });
      } else if (received === 2) {
        logger.warn({ signal: name }, "drain in progress, signal ignored: a third signal forces the exit");
      } else {
        logger.error(
          {
            signal: name,
            ...pending(),
            abandoned: "calls in flight get no answer from this bridge",
            kept: "one-way messages not yet delivered stay journaled for the next start (S10)",
          },
          "forced exit during drain",
        );
        process.exit(ExitCode.FAILURE);
      }
    };
    const done = (): void => {
      process.off("SIGTERM", onSignal);
      process.off("SIGINT", onSignal);
    };
    process.on("SIGTERM", onSignal);
    process.on("SIGINT", onSignal);
  });
}
