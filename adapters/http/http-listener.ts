import { readFileSync } from "node:fs";
import { createSecureContext } from "node:tls";
import { createJsonCodec } from "../../bridge/codec/json-codec.js";
import type { CookieBinding, HttpTlsConfig } from "../../bridge/config/config.js";
import type { OperationContract } from "../../bridge/contracts/contract.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { Listener, ListenerContext } from "../../bridge/listener/listener.js";
import { grpcServices } from "../grpc/grpc-listener.js";
import {
  grpcStreamHandler,
  isGrpcContentType,
  MAX_SESSION_MEMORY_MB,
  MAX_STREAMS_PER_CONNECTION,
  NODE_MAX_HEADER_LIST_BYTES,
  NODE_MAX_HEADER_PAIRS,
} from "../grpc/h2-server.js";
import { ServingStatus } from "../grpc/health-service.js";
import { type CallTarget, type ConnectServing, replyError, serveConnect } from "./connect-inbound.js";
import { createCookieRules } from "./cookie-binding.js";
import { isGrpcWebType, replyGrpcWebError } from "./grpc-web-inbound.js";
import { mediaType } from "./http-metadata.js";
import { type HttpRequest, type HttpResponse, startHttpServer } from "./http-server.js";
import { openApiDocument } from "./openapi.js";
import { sessionServiceOperations, sessionServiceTarget } from "./session-service-target.js";
import { type SessionsRest, serveSessions } from "./sessions-rest.js";

export interface HttpListenerOptions {
  /** host:port; port 0 picks a free one. */
  readonly address: string;
  /**
   * File descriptors for reflection, as the gRPC port has them. The HTTP port serves the
   * gRPC protocol too (HTTP/2, `application/grpc`), so one port answers Connect, gRPC-Web
   * and gRPC clients.
   */
  readonly descriptors: readonly Buffer[];
  /** Cookie bindings (listeners.httpCookies). */
  readonly cookies?: readonly CookieBinding[] | undefined;
  /** TLS (listeners.httpTls): PEM files read once at start. Absent: cleartext. */
  readonly tls?: HttpTlsConfig | undefined;
}

export interface HttpListener extends Listener {
  /** The real port bound. */
  readonly port: number;
}

/**
 * The inbound HTTP port (HTTP/1.1 and h2c on one port): every operation of the
 * configured contracts over the Connect protocol at /<package.Service>/<Method>, and the
 * sessions API at /sessions (JSON and Server-Sent Events), described at /openapi.json.
 */
export async function startHttpListener(
  context: ListenerContext,
  options: HttpListenerOptions,
): Promise<HttpListener> {
  const tls = options.tls === undefined ? undefined : readTls(options.tls);
  const serving: ConnectServing = {
    context,
    json: createJsonCodec(context.contracts, { maxInputBytes: context.maxPayloadBytes }),
    // Secure only over TLS: a browser would never send a Secure cookie back over cleartext.
    cookies: createCookieRules(options.cookies ?? [], context.contracts, { secure: tls !== undefined }),
  };
  const own = {
    operations: sessionServiceOperations(),
    target: sessionServiceTarget(context.bridge.sessions),
  };
  const sessions: SessionsRest = {
    api: context.bridge.sessions,
    json: serving.json,
    principals: context.principals,
  };
  // Generated once: the contracts do not change while the bridge runs.
  const openapi = Buffer.from(JSON.stringify(openApiDocument(context.contracts, packageVersion())), "utf8");
  let draining = (): boolean => false;
  const handler = (request: HttpRequest, response: HttpResponse): void => {
    // A broken client connection must not crash the bridge.
    request.on("error", () => {});
    response.on("error", () => {});
    if (request.method === "GET" && (request.url ?? "").split("?")[0] === "/openapi.json") {
      response.writeHead(200, { "content-type": "application/json", "content-length": openapi.length });
      response.end(openapi);
      return;
    }
    handle(serving, sessions, own, request, response, draining()).catch((error: unknown) => {
      context.logger.error({ err: error }, "http request failed");
      replyError(response, BridgeError.from(error));
    });
  };
  const grpc = grpcServices(context, options.descriptors);
  const dispatchGrpc = grpcStreamHandler({
    handlers: grpc.handlers,
    maxMessageBytes: context.maxPayloadBytes,
  });
  const server = await startHttpServer({
    address: options.address,
    handler,
    tls,
    claimStream: (stream, headers, rawHeaders) => {
      if (!isGrpcContentType(headers["content-type"])) return false;
      if (draining()) {
        // As the gRPC port does while draining: new calls are refused, retryably.
        stream.respond(
          {
            ":status": 200,
            "content-type": "application/grpc",
            "grpc-status": "14",
            "grpc-message": "the bridge is shutting down",
          },
          { endStream: true },
        );
        stream.resume();
        return true;
      }
      dispatchGrpc(stream, headers, rawHeaders);
      return true;
    },
    // The gRPC port's limits hold for gRPC calls that arrive here as well.
    http2Options: {
      maxSessionMemory: MAX_SESSION_MEMORY_MB,
      maxHeaderListPairs: NODE_MAX_HEADER_PAIRS,
      settings: {
        maxConcurrentStreams: MAX_STREAMS_PER_CONNECTION,
        maxHeaderListSize: NODE_MAX_HEADER_LIST_BYTES,
      },
    },
  });
  draining = () => server.draining;
  const drain = (graceMs: number): Promise<void> => {
    grpc.health.setAll(ServingStatus.NOT_SERVING);
    return server.drain(graceMs);
  };
  return {
    transport: "http",
    address: server.address,
    port: server.port,
    drain,
    close: () => drain(0),
  };
}

async function handle(
  serving: ConnectServing,
  sessions: SessionsRest,
  own: { operations: ReadonlyMap<string, OperationContract>; target: CallTarget },
  request: HttpRequest,
  response: HttpResponse,
  draining: boolean,
): Promise<void> {
  if (draining) {
    return replyError(
      response,
      new BridgeError(Code.UNAVAILABLE, Reason.SHUTTING_DOWN, "the bridge is shutting down"),
    );
  }
  const path = (request.url ?? "/").split("?")[0] ?? "/";
  if (path === "/sessions" || path.startsWith("/sessions/")) {
    if (serveSessions(sessions, request, response)) return;
  }
  const ownOp = own.operations.get(path);
  const op = ownOp ?? serving.context.contracts.operations.get(path);
  // A gRPC-Web caller gets its faults in gRPC-Web's form, whatever went wrong.
  if (
    isGrpcWebType(mediaType(request.headers["content-type"])) &&
    (op === undefined || request.method !== "POST")
  ) {
    return replyGrpcWebError(
      response,
      op === undefined
        ? new BridgeError(
            Code.UNIMPLEMENTED,
            Reason.UNKNOWN_OPERATION,
            `no operation ${path.slice(0, 256)} in the configured contracts`,
          )
        : new BridgeError(
            Code.UNIMPLEMENTED,
            Reason.INVALID_REQUEST,
            `method ${request.method} is not allowed: use POST`,
          ),
    );
  }
  if (op === undefined) {
    // Connect answers an unknown procedure with unimplemented, HTTP 404.
    return replyError(
      response,
      new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.UNKNOWN_OPERATION,
        `no operation ${path} in the configured contracts`,
        {
          metadata: { operation: path.slice(0, 256) },
        },
      ),
      404,
    );
  }
  if (request.method !== "POST" && request.method !== "GET") {
    return replyError(
      response,
      new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.INVALID_REQUEST,
        `method ${request.method} is not allowed: use POST`,
      ),
      405,
      { allow: "POST, GET" },
    );
  }
  await serveConnect(
    serving,
    op,
    request,
    response,
    ownOp === undefined ? serving.context.bridge : own.target,
  );
}

/** The certificate chain and key, or a clear INVALID_ARGUMENT naming the file that failed. */
function readTls(config: HttpTlsConfig): { cert: Buffer; key: Buffer } {
  const read = (file: string, what: string): Buffer => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new BridgeError(
        Code.INVALID_ARGUMENT,
        Reason.INVALID_CONFIG,
        `listeners.httpTls: cannot read the ${what} ${file}: ${error instanceof Error ? error.message : String(error)}`,
      );
    }
  };
  const pair = { cert: read(config.certFile, "certificate"), key: read(config.keyFile, "key") };
  try {
    // Checked here so that a key that does not match, or a file that is no PEM, is a
    // configuration problem at start rather than a failure on the first connection.
    createSecureContext(pair);
  } catch (error) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_CONFIG,
      `listeners.httpTls: ${config.certFile} and ${config.keyFile} are no usable certificate and key: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
  return pair;
}

/** The package version (dist/adapters/http → the package root). */
function packageVersion(): string {
  try {
    const file = new URL("../../../package.json", import.meta.url);
    return (JSON.parse(readFileSync(file, "utf8")) as { version: string }).version;
  } catch {
    return "0.0.0";
  }
}
