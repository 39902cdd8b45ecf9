/**
 * The bridge under test, in its own process so its CPU and memory are its own. Loads
 * bench/sessionbridge.yaml, points the echo process entry at the real echo port, starts
 * the runtime on a random port and prints {"type":"ready","address":…,"port":…}.
 *
 *   node dist/bench/bridge-child.js <echo-port> <memory|sqlite:/abs/path.db>
 *   node dist/bench/bridge-child.js nats://… <memory|sqlite:/abs/path.db>
 *
 * With a NATS URL instead of a port, the bridge serves NATS (prefix sb) and reaches the
 * echo process at nats://bench.echo.
 *
 * stdin: a line "memory" prints {"type":"memory",…} (after a full GC when the child runs
 * with --expose-gc, so heap figures are what is retained); closing stdin stops the bridge
 * cleanly, which is also when a --cpu-prof profile is written.
 */
import { createInterface } from "node:readline";
import { loadBridgeSetup } from "../bridge/config/check-config.js";
import { startBridgeRuntime } from "../cli/bridge-runtime.js";
import { benchConfigFile } from "./bench-paths.js";

const [echoPort, store] = process.argv.slice(2);
if (echoPort === undefined || store === undefined) {
  process.stderr.write("usage: bridge-child <echo-port> <memory|sqlite:/abs/path.db>\n");
  process.exit(2);
}

const nats = echoPort.startsWith("nats://") ? echoPort : undefined;
const setup = loadBridgeSetup({
  file: benchConfigFile(),
  overrides: { grpc: "127.0.0.1:0", store, ...(nats === undefined ? {} : { nats }) },
});
const config = {
  ...setup.config,
  processes: setup.config.processes.map((p) => ({
    ...p,
    location: nats === undefined ? `grpc://127.0.0.1:${echoPort}` : "nats://bench.echo",
  })),
};
const runtime = await startBridgeRuntime({ config, contracts: setup.contracts });
const print = (message: object): void => {
  process.stdout.write(`${JSON.stringify(message)}\n`);
};
print({ type: "ready", address: runtime.grpc.address, port: runtime.grpc.port, pid: process.pid });

const gc = (globalThis as { gc?: () => void }).gc;
const commands = createInterface({ input: process.stdin });
commands.on("line", (line) => {
  if (line.trim() !== "memory") return;
  gc?.();
  print({ type: "memory", gc: gc !== undefined, ...process.memoryUsage() });
});
commands.on("close", () => {
  runtime.stop(2000).then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`stop failed: ${String(error)}\n`);
      process.exit(1);
    },
  );
});
