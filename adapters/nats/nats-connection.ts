import { readFileSync } from "node:fs";
import {
  type Authenticator,
  connect,
  credsAuthenticator,
  type NatsConnection,
  type NodeConnectionOptions,
  nkeyAuthenticator,
} from "@nats-io/transport-node";
import type { NatsConfig } from "../../bridge/config/config.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";

/**
 * Connects to the configured NATS servers with the configured credentials: a token,
 * user and password, a credentials file (JWT and seed) or an NKey seed file, and TLS.
 * One connection serves the listener and the outbound transport.
 */
export async function connectNats(config: NatsConfig, name = "sessionbridge"): Promise<NatsConnection> {
  const options: NodeConnectionOptions = {
    servers: config.url.split(",").map((s) => s.trim()),
    name,
    // The bridge keeps serving across a server restart: reconnect without end.
    maxReconnectAttempts: -1,
  };
  if (config.token !== undefined) options.token = config.token;
  if (config.user !== undefined) options.user = config.user;
  if (config.password !== undefined) options.pass = config.password;
  const authenticators: Authenticator[] = [];
  if (config.credsFile !== undefined) {
    const file = config.credsFile;
    authenticators.push(credsAuthenticator(() => readCredentials(file)));
  }
  if (config.nkeyFile !== undefined) {
    const file = config.nkeyFile;
    authenticators.push(nkeyAuthenticator(() => readCredentials(file)));
  }
  if (authenticators.length > 0) options.authenticator = authenticators;
  if (config.tls !== undefined) {
    options.tls = {
      ...(config.tls.caFile === undefined ? {} : { caFile: config.tls.caFile }),
      ...(config.tls.certFile === undefined ? {} : { certFile: config.tls.certFile }),
      ...(config.tls.keyFile === undefined ? {} : { keyFile: config.tls.keyFile }),
    };
  }
  try {
    return await connect(options);
  } catch (error) {
    throw new BridgeError(
      Code.UNAVAILABLE,
      Reason.INVALID_CONFIG,
      `cannot connect to NATS at ${config.url}: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
}

/** Read when the connection authenticates, so a rotated file is picked up on reconnect. */
function readCredentials(file: string): Uint8Array {
  return new TextEncoder().encode(readFileSync(file, "utf8").trim());
}
