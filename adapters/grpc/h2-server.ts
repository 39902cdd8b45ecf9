import http2 from "node:http2";
import type { Socket } from "node:net";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { metadataOf, parseGrpcTimeout } from "./grpc-wire-headers.js";
import { GrpcServerCall } from "./h2-server-call.js";

const { HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH, HTTP2_HEADER_CONTENT_TYPE, HTTP2_HEADER_STATUS } =
  http2.constants;

/** Handles one call; it must end the call (end or fail) exactly once. */
export type GrpcHandler = (call: GrpcServerCall) => void;

export interface GrpcServerOptions {
  /** host:port; port 0 picks a free one. */
  readonly address: string;
  /** Handlers by method path ("/pkg.Service/Method"). */
  readonly handlers: ReadonlyMap<string, GrpcHandler>;
  /** Largest request message accepted, in bytes. */
  readonly maxMessageBytes: number;
}

export interface GrpcServer {
  readonly address: string;
  readonly port: number;
  /**
   * Stops taking connections, asks clients to go away (GOAWAY) so calls in flight finish,
   * and closes whatever is left after `graceMs`.
   */
  drain(graceMs: number): Promise<void>;
}

/** Request headers that are the transport's own, not metadata (S15). */
const TRANSPORT_FIELDS: ReadonlySet<string> = new Set([
  "content-type",
  "te",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "user-agent",
]);

/**
 * A gRPC server written directly on node:http2 (PROTOCOL-HTTP2.md): it routes each stream
 * by its :path to a handler and gives the handler the call's metadata, deadline and
 * messages. Leaner than a general gRPC framework, because the bridge only moves bytes:
 * it never decodes payloads it does not need.
 */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const server = http2.createServer({
    // Same reasoning as the outbound side: flow control bounds memory, Node's own
    // session memory cap would refuse ordinary load.
    maxSessionMemory: Number.MAX_SAFE_INTEGER,
    settings: { enablePush: false },
  });
  const sessions = new Set<http2.ServerHttp2Session>();
  const sockets = new Set<Socket>();
  server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
  });
  server.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    // A broken connection is the client's problem; it must not crash the bridge.
    session.on("error", () => {});
  });
  server.on("stream", (stream, headers) => dispatch(stream, headers, options));

  const { host, port } = splitAddress(options.address);
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = (server.address() as { port: number }).port;
  let draining: Promise<void> | undefined;
  return {
    address: `${host.includes(":") ? `[${host}]` : host}:${bound}`,
    port: bound,
    drain(graceMs) {
      draining ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        // GOAWAY: clients open no new streams here; streams in flight may finish.
        for (const session of sessions) session.close();
        const force = setTimeout(() => {
          for (const session of sessions) session.destroy();
          for (const socket of sockets) socket.destroy();
        }, graceMs);
        force.unref();
      });
      return draining;
    },
  };
}

function dispatch(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  options: GrpcServerOptions,
): void {
  stream.on("error", () => {
    // Reset by the client or the connection: the call's close handling reports it.
  });
  if (headers[HTTP2_HEADER_METHOD] !== "POST") {
    plainResponse(stream, 405);
    return;
  }
  const contentType = headers[HTTP2_HEADER_CONTENT_TYPE];
  if (typeof contentType !== "string" || !contentType.startsWith("application/grpc")) {
    plainResponse(stream, 415);
    return;
  }
  const path = String(headers[HTTP2_HEADER_PATH] ?? "");
  const encoding = headers["grpc-encoding"];
  const call = new GrpcServerCall(
    stream,
    path,
    metadataOf(headers, TRANSPORT_FIELDS),
    parseGrpcTimeout(headers["grpc-timeout"] as string | undefined, Date.now()),
    typeof encoding === "string" && encoding !== "identity" ? encoding : undefined,
    options.maxMessageBytes,
  );
  const handler = options.handlers.get(path);
  if (handler === undefined) {
    call.fail(new BridgeError(Code.UNIMPLEMENTED, Reason.UNKNOWN_OPERATION, `unknown method ${path}`));
    return;
  }
  try {
    handler(call);
  } catch (error) {
    call.fail(BridgeError.from(error));
  }
}

/** A non-gRPC answer for a request that is not gRPC at all. */
function plainResponse(stream: http2.ServerHttp2Stream, status: number): void {
  if (stream.closed || stream.destroyed) return;
  stream.respond({ [HTTP2_HEADER_STATUS]: status }, { endStream: true });
  stream.resume();
}

function splitAddress(address: string): { host: string; port: number } {
  const at = address.lastIndexOf(":");
  const host = address.slice(0, at).replace(/^\[(.*)\]$/, "$1");
  return { host, port: Number(address.slice(at + 1)) };
}
