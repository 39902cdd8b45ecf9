import { Server, ServerCredentials } from "@grpc/grpc-js";
import { HealthImplementation, type ServingStatusMap } from "grpc-health-check";
import type { Bridge } from "../../bridge/engine/bridge-engine.js";
import { inboundService } from "./grpc-inbound.js";
import { addReflection } from "./reflection.js";
import { SessionServiceService, sessionServiceImplementation } from "./session-service.js";

export const SESSION_SERVICE = "sessionbridge.v1.SessionService";

export interface GrpcListenerOptions {
  readonly bridge: Bridge;
  /** host:port; port 0 picks a free one. */
  readonly address: string;
  /** File descriptors of everything served, for reflection: contracts plus the bridge's own. */
  readonly descriptors: readonly Buffer[];
  /** Largest message accepted, in bytes. */
  readonly maxMessageBytes: number;
}

export interface GrpcListener {
  /** The address actually bound, with the real port. */
  readonly address: string;
  readonly port: number;
  /** Reports NOT_SERVING, lets calls in flight finish, then stops. */
  drain(graceMs?: number): Promise<void>;
  close(): Promise<void>;
}

/**
 * The inbound gRPC port: every configured contract service (from descriptors), the
 * SessionService, grpc.health.v1.Health and server reflection.
 */
export async function startGrpcListener(options: GrpcListenerOptions): Promise<GrpcListener> {
  const { bridge } = options;
  const server = new Server({
    "grpc.max_receive_message_length": options.maxMessageBytes,
    "grpc.max_send_message_length": -1,
  });
  const statuses: ServingStatusMap = { "": "SERVING", [SESSION_SERVICE]: "SERVING" };
  for (const service of bridge.contracts.services.values()) {
    const { definition, implementation } = inboundService(bridge, service);
    server.addService(definition, implementation);
    statuses[service.name] = "SERVING";
  }
  server.addService(SessionServiceService, sessionServiceImplementation(bridge.sessions));
  const health = new HealthImplementation(statuses);
  health.addToServer(server);
  addReflection(server, options.descriptors);

  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(options.address, ServerCredentials.createInsecure(), (error, bound) =>
      error === null ? resolve(bound) : reject(error),
    );
  });
  const host = options.address.slice(0, options.address.lastIndexOf(":"));
  let stopped: Promise<void> | undefined;

  const drain = (graceMs = 10_000): Promise<void> => {
    stopped ??= new Promise<void>((resolve) => {
      for (const name of Object.keys(statuses)) health.setStatus(name, "NOT_SERVING");
      const force = setTimeout(() => server.forceShutdown(), graceMs);
      force.unref();
      server.tryShutdown(() => {
        clearTimeout(force);
        resolve();
      });
    });
    return stopped;
  };

  return {
    address: `${host}:${port}`,
    port,
    drain,
    close: () => drain(0),
  };
}
