/**
 * Worker entry of off-thread-setup.ts: loads and validates the configuration (YAML parser,
 * schema) in a thread that ends once it has answered, so the bridge's own isolate never
 * holds that code. Posts `{ config }`, or `{ failed: true }` for the caller to load it
 * again in its own thread and report the problems exactly as it always does.
 */
import { parentPort, workerData } from "node:worker_threads";
import { type LoadConfigOptions, loadLocatedConfig } from "../bridge/config/load-config.js";

try {
  const { config } = loadLocatedConfig(workerData as LoadConfigOptions);
  parentPort?.postMessage({ config });
} catch {
  parentPort?.postMessage({ failed: true });
}
