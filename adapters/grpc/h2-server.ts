import http2 from "node:http2";
import type { Socket } from "node:net";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { ACCEPT_ENCODING, acceptedEncodings, canDecompress } from "./grpc-compression.js";
import { metadataOf, parseGrpcTimeout } from "./grpc-wire-headers.js";
import { GrpcServerCall } from "./h2-server-call.js";

const { HTTP2_HEADER_METHOD, HTTP2_HEADER_PATH, HTTP2_HEADER_CONTENT_TYPE, HTTP2_HEADER_STATUS } =
  http2.constants;

/** Handles one call; it must end the call (end or fail) exactly once. */
export type GrpcHandler = (call: GrpcServerCall) => void;

export interface GrpcDispatchOptions {
  /** Handlers by method path ("/pkg.Service/Method"). */
  readonly handlers: ReadonlyMap<string, GrpcHandler>;
  /** Largest request message accepted, in bytes. */
  readonly maxMessageBytes: number;
}

export interface GrpcServerOptions extends GrpcDispatchOptions {
  /** host:port; port 0 picks a free one. */
  readonly address: string;
}

/** Handles one HTTP/2 stream that carries a gRPC call, as node:http2's "stream" event gives it. */
export type GrpcStreamHandler = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  rawHeaders: readonly string[],
) => void;

export interface GrpcServer {
  readonly address: string;
  readonly port: number;
  /**
   * Stops taking connections, asks clients to go away (GOAWAY) so calls in flight finish,
   * and closes whatever is left after `graceMs`.
   */
  drain(graceMs: number): Promise<void>;
}

/**
 * Concurrent streams one client connection may open (SETTINGS_MAX_CONCURRENT_STREAMS).
 * Each stream may hold up to its flow-control window (64 KiB) of unread request data and
 * one response message being written, so the cap bounds what one connection can make
 * the bridge hold; gRPC clients queue calls past it rather than fail them.
 */
export const MAX_STREAMS_PER_CONNECTION = 256;

/**
 * Node's cap on one session's own memory (nghttp2 state, header tables, frames queued to
 * send), in MB. Past it Node refuses new streams with ENHANCE_YOUR_CALM instead of
 * growing. Node's default (10 MB) refuses ordinary load from a busy client; a few
 * hundred streams of small messages need far less than this.
 */
export const MAX_SESSION_MEMORY_MB = 64;

/**
 * Request header limits, the bridge's own (README, "What the bridge serves"): fields in
 * one request's header block and their size, counted as HTTP/2 does (name + value + 32
 * per field, RFC 9113 §6.5.2). gRPC's C core and grpc-java default to 8 KiB of metadata.
 * A request over them gets RESOURCE_EXHAUSTED with a message.
 */
export const MAX_HEADER_FIELDS = 100;
export const MAX_HEADER_LIST_BYTES = 16 * 1024;

/**
 * Node's own limits sit above the bridge's, so a request over the bridge's limits still
 * reaches dispatch and gets a status; past Node's, Node resets the stream
 * (ENHANCE_YOUR_CALM) before the bridge sees it. The list size is also advertised in
 * SETTINGS_MAX_HEADER_LIST_SIZE, which careful clients check before sending.
 */
export const NODE_MAX_HEADER_PAIRS = 4 * MAX_HEADER_FIELDS;
export const NODE_MAX_HEADER_LIST_BYTES = 4 * MAX_HEADER_LIST_BYTES;

/** The content types of gRPC with protobuf messages, the only ones the bridge reads. */
const GRPC_CONTENT_TYPES: ReadonlySet<string> = new Set(["application/grpc", "application/grpc+proto"]);

/**
 * A gRPC server written directly on node:http2 (PROTOCOL-HTTP2.md): it routes each stream
 * by its :path to a handler and gives the handler the call's metadata, deadline and
 * messages. Leaner than a general gRPC framework, because the bridge only moves bytes:
 * it never decodes payloads it does not need.
 */
export async function startGrpcServer(options: GrpcServerOptions): Promise<GrpcServer> {
  const server = http2.createServer({
    maxSessionMemory: MAX_SESSION_MEMORY_MB,
    maxHeaderListPairs: NODE_MAX_HEADER_PAIRS,
    settings: {
      enablePush: false,
      maxConcurrentStreams: MAX_STREAMS_PER_CONNECTION,
      maxHeaderListSize: NODE_MAX_HEADER_LIST_BYTES,
    },
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
  const dispatch = grpcStreamHandler(options);
  server.on(
    "stream",
    (
      stream: http2.ServerHttp2Stream,
      headers: http2.IncomingHttpHeaders,
      _flags: number,
      rawHeaders: string[],
    ) => dispatch(stream, headers, rawHeaders),
  );

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

/**
 * Routes each gRPC stream by its :path to a handler. The gRPC port uses it for every
 * stream; the HTTP port hands it the streams whose content type is gRPC's, so gRPC
 * clients reach the bridge on either port.
 */
export function grpcStreamHandler(options: GrpcDispatchOptions): GrpcStreamHandler {
  return (stream, headers, rawHeaders) => dispatch(stream, headers, rawHeaders, options);
}

/**
 * True for the gRPC protocol's content types (application/grpc, application/grpc+<codec>),
 * which the HTTP port hands to the gRPC dispatcher; gRPC-Web's are not among them.
 */
export function isGrpcContentType(contentType: string | string[] | undefined): boolean {
  if (typeof contentType !== "string") return false;
  const type = contentType.trimStart().toLowerCase();
  return (
    type === "application/grpc" ||
    type.startsWith("application/grpc+") ||
    type.startsWith("application/grpc;")
  );
}

function dispatch(
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  rawHeaders: readonly string[],
  options: GrpcDispatchOptions,
): void {
  stream.on("error", ignoreStreamError);
  if (headers[HTTP2_HEADER_METHOD] !== "POST") {
    plainResponse(stream, 405);
    return;
  }
  const codec = grpcCodecOf(headers[HTTP2_HEADER_CONTENT_TYPE]);
  if (codec === undefined) {
    plainResponse(stream, 415);
    return;
  }
  const path = String(headers[HTTP2_HEADER_PATH] ?? "");
  const overLimit = headerLimitBroken(rawHeaders);
  const encoding = headers["grpc-encoding"];
  const call = new GrpcServerCall(
    stream,
    path,
    metadataOf(headers),
    parseGrpcTimeout(headers["grpc-timeout"] as string | undefined, Date.now()),
    typeof encoding === "string" && encoding !== "identity" ? encoding : undefined,
    acceptedEncodings(headers["grpc-accept-encoding"]),
    options.maxMessageBytes,
    codec,
  );
  if (overLimit !== undefined) {
    call.fail(new BridgeError(Code.RESOURCE_EXHAUSTED, Reason.INVALID_REQUEST, overLimit));
    return;
  }
  if (call.requestEncoding !== undefined && !canDecompress(call.requestEncoding)) {
    // Messages in a compression the bridge cannot read (gRPC's compression spec).
    call.fail(
      new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.INVALID_REQUEST,
        `grpc-encoding ${JSON.stringify(String(call.requestEncoding).slice(0, 32))} is not supported; accepted: ${ACCEPT_ENCODING}`,
      ),
    );
    return;
  }
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

/**
 * The codec of a gRPC content type, any case, parameters (";charset=…") allowed as media
 * types allow them: application/grpc and application/grpc+proto are protobuf,
 * application/grpc+json is JSON (transcoded at the edge by the contract handlers);
 * anything else (a custom codec) the bridge cannot read.
 */
function grpcCodecOf(contentType: string | string[] | undefined): "proto" | "json" | undefined {
  if (typeof contentType !== "string") return undefined;
  const semicolon = contentType.indexOf(";");
  const type = (semicolon < 0 ? contentType : contentType.slice(0, semicolon)).trim().toLowerCase();
  if (GRPC_CONTENT_TYPES.has(type)) return "proto";
  return type === "application/grpc+json" ? "json" : undefined;
}

/** Why the request's header block breaks the bridge's limits, or undefined. */
function headerLimitBroken(rawHeaders: readonly string[]): string | undefined {
  const fields = rawHeaders.length / 2;
  if (fields > MAX_HEADER_FIELDS) {
    return `the request has ${fields} header fields, over the limit of ${MAX_HEADER_FIELDS}`;
  }
  let bytes = 0;
  for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
    // Header strings come from Node as latin1: one character per byte.
    bytes += (rawHeaders[i] as string).length + (rawHeaders[i + 1] as string).length + 32;
  }
  if (bytes > MAX_HEADER_LIST_BYTES) {
    return `the request headers take ${bytes} bytes, over the limit of ${MAX_HEADER_LIST_BYTES}`;
  }
  return undefined;
}

/**
 * A stream reset by the client or the connection: the call's close handling reports it.
 * One shared listener rather than a closure per stream (DESIGN §6, hot path).
 */
function ignoreStreamError(): void {}

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
