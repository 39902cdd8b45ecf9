import { loadContracts } from "../contracts/load-contracts.js";
import { type BridgeSetup, checkBridgeSetup } from "./bridge-setup.js";
import { type LoadConfigOptions, loadLocatedConfig } from "./load-config.js";

export type { BridgeSetup } from "./bridge-setup.js";

/**
 * Loads the configuration and its contracts and checks that they fit (bridge-setup.ts).
 * This is what `sessionbridge validate` and `sessionbridge start` run. Throws ConfigError
 * (config problems, with the place of the process entry) or ContractError (contract
 * problems).
 */
export function loadBridgeSetup(options: LoadConfigOptions = {}): BridgeSetup {
  const located = loadLocatedConfig(options);
  return checkBridgeSetup(located, loadContracts(located.config.contracts));
}
