/**
 * A bridge in this process on the memory store, in front of the grpc-go echo server, for
 * the scripts that count what a call costs per call rather than per second
 * (call-cost.ts, survivor-cost.ts), and the closed loop that drives calls through it.
 */
import { installLeanAsyncBind } from "../adapters/grpc/async-bind.js";
import { loadBridgeSetup } from "../bridge/config/check-config.js";
import { type BridgeRuntime, startBridgeRuntime } from "../cli/bridge-runtime.js";
import { benchConfigFile } from "./bench-paths.js";
import { startGoEcho } from "./bench-processes.js";
import { installChildCleanup } from "./children.js";
import type { H2Pool } from "./h2-client.js";

export async function startInProcessBridge(): Promise<{
  readonly echo: Awaited<ReturnType<typeof startGoEcho>>;
  readonly runtime: BridgeRuntime;
}> {
  installChildCleanup();
  // As `sessionbridge start` does (cli/start-command.ts).
  installLeanAsyncBind();
  const echo = await startGoEcho();
  const setup = loadBridgeSetup({
    file: benchConfigFile(),
    overrides: { grpc: "127.0.0.1:0", store: "memory" },
  });
  const runtime = await startBridgeRuntime({
    config: {
      ...setup.config,
      processes: setup.config.processes.map((p) => ({ ...p, location: `grpc://${echo.address}` })),
    },
    contracts: setup.contracts,
  });
  return { echo, runtime };
}

export interface DriveOptions {
  readonly count: number;
  /** Calls kept outstanding; slot i sends on connection i mod the pool's connections. */
  readonly outstanding: number;
  readonly path: string;
  /** Request frames, used in turn. */
  readonly frames: readonly Buffer[];
  readonly expectedBytes: number;
}

/** `count` calls, `outstanding` at a time; rejects on the first failure. */
export function driveCalls(pool: H2Pool, options: DriveOptions): Promise<void> {
  const { count, outstanding, path, frames, expectedBytes } = options;
  return new Promise((resolve, reject) => {
    let sent = 0;
    let done = 0;
    const send = (connection: number): void => {
      if (sent >= count) return;
      const frame = frames[sent++ % frames.length] as Buffer;
      pool.unary(connection, path, frame, expectedBytes, (failure) => {
        if (failure !== undefined) {
          reject(new Error(failure));
          return;
        }
        done += 1;
        if (done === count) resolve();
        else send(connection);
      });
    };
    for (let slot = 0; slot < outstanding; slot++) send(slot % pool.connections);
  });
}
