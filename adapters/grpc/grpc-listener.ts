import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { Listener, ListenerContext } from "../../bridge/listener/listener.js";
import { inboundHandlers } from "./grpc-inbound.js";
import { type GrpcHandler, startGrpcServer } from "./h2-server.js";
import { createHealth, type Health, ServingStatus } from "./health-service.js";
import { reflectionHandlers } from "./reflection-service.js";
import { sessionServiceHandlers } from "./session-service.js";

export const SESSION_SERVICE = "sessionbridge.v1.SessionService";
const HEALTH_SERVICE = "grpc.health.v1.Health";

export interface GrpcListenerOptions {
  /** host:port; port 0 picks a free one. */
  readonly address: string;
  /** File descriptors of everything served, for reflection: contracts plus the bridge's own. */
  readonly descriptors: readonly Buffer[];
}

export interface GrpcListener extends Listener {
  /** The real port bound. */
  readonly port: number;
}

/**
 * The inbound gRPC port: every configured contract service (from descriptors), the
 * SessionService, grpc.health.v1.Health and server reflection v1 and v1alpha.
 */
export async function startGrpcListener(
  context: ListenerContext,
  options: GrpcListenerOptions,
): Promise<GrpcListener> {
  const served = grpcServices(context, options.descriptors);
  const server = await startGrpcServer({
    address: options.address,
    handlers: served.handlers,
    maxMessageBytes: context.maxPayloadBytes,
  });
  const drain = (graceMs = 10_000): Promise<void> => {
    served.health.setAll(ServingStatus.NOT_SERVING);
    return server.drain(graceMs);
  };
  return { transport: "grpc", address: server.address, port: server.port, drain, close: () => drain(0) };
}

/** The bridge's own services read and write protobuf only: a JSON call gets UNIMPLEMENTED. */
function protobufOnly(handler: GrpcHandler): GrpcHandler {
  return (call) => {
    if (call.codec === "proto") return handler(call);
    call.fail(
      new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.INVALID_REQUEST,
        `${call.path} takes application/grpc+proto only`,
      ),
    );
  };
}

/** What a port that speaks gRPC serves, by method path, and its health service. */
export interface GrpcServices {
  readonly handlers: ReadonlyMap<string, GrpcHandler>;
  readonly health: Health;
}

/**
 * The handlers of every configured contract service, the SessionService, health and
 * reflection: the gRPC port serves them, and so does the HTTP port for gRPC clients.
 */
export function grpcServices(context: ListenerContext, descriptors: readonly Buffer[]): GrpcServices {
  const { bridge } = context;
  const contractServices = [...bridge.contracts.services.keys()];
  const health = createHealth([...contractServices, SESSION_SERVICE]);
  const handlers = new Map<string, GrpcHandler>();
  for (const service of bridge.contracts.services.values()) {
    for (const [path, handler] of inboundHandlers(context, service)) handlers.set(path, handler);
  }
  const others = [
    sessionServiceHandlers(bridge.sessions, context.principals),
    health.handlers,
    reflectionHandlers(descriptors, [...contractServices, SESSION_SERVICE, HEALTH_SERVICE]),
  ];
  for (const map of others) {
    for (const [path, handler] of map) handlers.set(path, protobufOnly(handler));
  }
  return { handlers, health };
}
