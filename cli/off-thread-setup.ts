import { Worker } from "node:worker_threads";
import { type BridgeSetup, checkBridgeSetup } from "../bridge/config/bridge-setup.js";
import type { BridgeConfig } from "../bridge/config/config.js";
import { ConfigError } from "../bridge/config/config-error.js";
import type { LoadConfigOptions } from "../bridge/config/load-config.js";
import { loadContracts } from "../bridge/contracts/load-contracts.js";

type WorkerAnswer = { readonly config: BridgeConfig } | { readonly failed: true };

/**
 * loadBridgeSetup for a long-running bridge, with the configuration file loaded and
 * validated in a short-lived worker thread (config-worker.ts). The YAML parser and the
 * schema library are code every later call leaves alone, yet an isolate that loaded them
 * keeps their source text, compiled functions and schema objects for good: about 4 MB of
 * the idle bridge's heap (3.6 MB of it the schema). The worker's isolate goes away with
 * it. The contracts are loaded here: the bridge uses them on every call.
 *
 * Anything but a clean configuration (a problem in the file, an unexpected failure) is
 * loaded again in this thread with loadBridgeSetup, so problems are reported as
 * `validate` reports them, with file, line and column.
 */
export async function loadBridgeSetupOffThread(options: LoadConfigOptions): Promise<BridgeSetup> {
  const answer = await new Promise<WorkerAnswer | undefined>((resolve) => {
    const worker = new Worker(new URL("./config-worker.js", import.meta.url), {
      workerData: options,
      stdout: false,
      stderr: false,
    });
    let answered: WorkerAnswer | undefined;
    worker.once("message", (message: WorkerAnswer) => {
      answered = message;
    });
    // A worker that could not start or threw answers nothing: the fallback below reports it.
    worker.once("error", () => undefined);
    worker.once("exit", () => resolve(answered));
  });
  if (answer !== undefined && "config" in answer) {
    const { config } = answer;
    const contracts = loadContracts(config.contracts);
    try {
      return checkBridgeSetup(
        { config, placeOf: () => ({ file: config.source ?? "(embedded defaults)" }) },
        contracts,
      );
    } catch (error) {
      // Services and processes that do not fit: loaded again below for the places of the entries.
      if (!(error instanceof ConfigError)) throw error;
    }
  }
  const { loadBridgeSetup } = await import("../bridge/config/check-config.js");
  return loadBridgeSetup(options);
}
