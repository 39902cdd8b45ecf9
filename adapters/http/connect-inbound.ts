import type { OutgoingHttpHeaders, ServerResponse } from "node:http";
import type { CallContext } from "../../bridge/call/call.js";
import { Header } from "../../bridge/call/metadata.js";
import type { JsonCodec } from "../../bridge/codec/json-codec.js";
import type { OperationContract } from "../../bridge/contracts/contract.js";
import type { Bridge } from "../../bridge/engine/bridge-engine.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { httpStatusOf } from "../../bridge/errors/http-status.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { ListenerContext } from "../../bridge/listener/listener.js";
import { connectErrorJson, faultSessionHeaders } from "./connect-error.js";
import { serveStream } from "./connect-stream.js";
import type { CookieRules } from "./cookie-binding.js";
import { grpcWebMode, isGrpcWebType, replyGrpcWebError, serveGrpcWeb } from "./grpc-web-inbound.js";
import { gunzipBounded, readBody } from "./http-body.js";
import {
  headerValue,
  mediaType,
  parseConnectTimeout,
  putResponseMetadata,
  requestMetadata,
} from "./http-metadata.js";
import type { HttpRequest, HttpResponse } from "./http-server.js";

export type Codec = "json" | "proto";

/** What serves the calls: the engine, or the bridge's own SessionService. */
export type CallTarget = Pick<Bridge, "unary" | "stream">;

/** What the Connect handlers need besides the listener context. */
export interface ConnectServing {
  readonly context: ListenerContext;
  readonly json: JsonCodec;
  /** Configured cookie bindings, if any (listeners.httpCookies). */
  readonly cookies?: CookieRules | undefined;
}

/** The Connect protocol's unary and streaming content types (connectrpc.com/docs/protocol). */
const UNARY_TYPES: Readonly<Record<string, Codec>> = {
  "application/json": "json",
  "application/proto": "proto",
};
const STREAM_TYPES: Readonly<Record<string, Codec>> = {
  "application/connect+json": "json",
  "application/connect+proto": "proto",
};

/**
 * One Connect call: POST (or GET, for shared operations) on /<package.Service>/<Method>.
 * Everything the caller sends is checked here, at the edge, before the engine sees it:
 * size, content type, protocol version, timeout, JSON (S4); the engine sees binary only
 * (DESIGN §7).
 */
export async function serveConnect(
  serving: ConnectServing,
  op: OperationContract,
  request: HttpRequest,
  response: HttpResponse,
  target: CallTarget = serving.context.bridge,
): Promise<void> {
  const type = mediaType(request.headers["content-type"]);
  const streamCodec = STREAM_TYPES[type];
  if (streamCodec !== undefined) {
    if (!op.responseStream && !op.requestStream) {
      return replyError(
        response,
        new BridgeError(
          Code.UNIMPLEMENTED,
          Reason.INVALID_REQUEST,
          `${op.path} is a unary operation: call it with application/json or application/proto`,
        ),
      );
    }
    return serveStream(serving, op, streamCodec, request, response, target);
  }
  const web = grpcWebMode(type);
  if (web !== undefined)
    return serveGrpcWeb(serving.context, serving.json, op, web, request, response, target);
  if (isGrpcWebType(type)) {
    return replyGrpcWebError(
      response,
      new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.INVALID_REQUEST,
        `content type ${JSON.stringify(type.slice(0, 64))} is not supported: gRPC-Web messages are +proto or +json`,
      ),
    );
  }
  if (request.method === "GET") return serveGet(serving, op, request, response, target);
  const codec = UNARY_TYPES[type];
  if (codec === undefined) {
    return replyError(
      response,
      new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.INVALID_REQUEST,
        `content type ${JSON.stringify(type)} is not supported: use application/json or application/proto (Connect unary), application/connect+json or application/connect+proto (Connect streaming), or gRPC-Web`,
      ),
      415,
      { "accept-post": "application/json, application/proto" },
    );
  }
  if (op.requestStream || op.responseStream) {
    return replyError(
      response,
      new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.INVALID_REQUEST,
        `${op.path} is a streaming operation: call it with application/connect+json or application/connect+proto`,
      ),
      415,
    );
  }
  let payload: Uint8Array;
  let call: CallContext;
  try {
    checkProtocolVersion(headerValue(request.headers, "connect-protocol-version"));
    call = callContext(serving.context, op, request, response, codec);
    let body = await readBody(request, serving.context.maxPayloadBytes);
    const encoding = headerValue(request.headers, "content-encoding");
    if (encoding === "gzip") body = await gunzipBounded(body, serving.context.maxPayloadBytes);
    else if (encoding !== undefined && encoding !== "identity") throw unsupportedEncoding(encoding);
    payload = codec === "json" ? serving.json.toBinary(op.requestType, body.toString("utf8")) : body;
  } catch (error) {
    return replyError(response, BridgeError.from(error));
  }
  await unaryCall(serving, op, codec, { ...call, payload }, request, response, target);
}

/**
 * GET for shared (read-only) operations, so they can be cached and linked
 * (connectrpc.com/docs/protocol, "Unary-Get-Request"): the message, its encoding and
 * compression travel in the query string.
 */
async function serveGet(
  serving: ConnectServing,
  op: OperationContract,
  request: HttpRequest,
  response: HttpResponse,
  target: CallTarget,
): Promise<void> {
  // GET serves operations that change nothing: shared ones (S6) and those declared
  // idempotency_level = NO_SIDE_EFFECTS, as the Connect protocol allows.
  if ((op.access !== "shared" && op.noSideEffects !== true) || op.requestStream || op.responseStream) {
    return replyError(
      response,
      new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.INVALID_REQUEST,
        `${op.path} is not a read-only unary operation: GET serves only shared or NO_SIDE_EFFECTS operations; use POST`,
      ),
      405,
      { allow: "POST" },
    );
  }
  try {
    const url = new URL(request.url ?? "/", "http://bridge");
    const q = url.searchParams;
    const codec = UNARY_TYPES[`application/${q.get("encoding") ?? ""}`];
    if (codec === undefined) throw badQuery("encoding must be json or proto");
    if (q.get("connect") !== null && q.get("connect") !== "v1") throw badQuery("connect must be v1");
    const compression = q.get("compression");
    const text = q.get("message") ?? "";
    if (text.length > serving.context.maxPayloadBytes * 2) {
      throw new BridgeError(
        Code.RESOURCE_EXHAUSTED,
        Reason.INVALID_REQUEST,
        "the message parameter exceeds the limit",
      );
    }
    let body: Buffer = q.get("base64") === "1" ? Buffer.from(text, "base64") : Buffer.from(text, "utf8");
    if (compression === "gzip") body = await gunzipBounded(body, serving.context.maxPayloadBytes);
    else if (compression !== null && compression !== "identity") throw unsupportedEncoding(compression);
    if (body.length > serving.context.maxPayloadBytes) {
      throw new BridgeError(Code.RESOURCE_EXHAUSTED, Reason.INVALID_REQUEST, "the message exceeds the limit");
    }
    const payload = codec === "json" ? serving.json.toBinary(op.requestType, body.toString("utf8")) : body;
    const call = callContext(serving.context, op, request, response, codec);
    await unaryCall(serving, op, codec, { ...call, payload }, request, response, target);
  } catch (error) {
    replyError(response, BridgeError.from(error));
  }
}

async function unaryCall(
  serving: ConnectServing,
  op: OperationContract,
  codec: Codec,
  given: CallContext & { readonly payload: Uint8Array },
  request: HttpRequest,
  response: HttpResponse,
  target: CallTarget,
): Promise<void> {
  try {
    // Cookies apply to contract operations only, never to the bridge's own API.
    const cookies = target === serving.context.bridge ? serving.cookies : undefined;
    const call =
      cookies === undefined
        ? given
        : {
            ...given,
            ...cookies.apply(op, given.metadata, headerValue(request.headers, "cookie"), given.payload),
          };
    const reply = await target.unary(call);
    const body =
      codec === "json"
        ? Buffer.from(serving.json.toJson(op.responseType, reply.payload), "utf8")
        : Buffer.from(reply.payload);
    const headers: OutgoingHttpHeaders = {};
    putResponseMetadata(headers, reply.headers);
    putResponseMetadata(headers, reply.trailers, "trailer-");
    Object.assign(headers, sessionHeaders(reply.sessionId, reply.messageId));
    headers["content-type"] = `application/${codec}`;
    headers["content-length"] = body.length;
    const setCookie = cookies?.setCookies(op, reply.sessionId, call.payload) ?? [];
    if (setCookie.length > 0) headers["set-cookie"] = setCookie;
    if (response.headersSent || response.writableEnded) return;
    response.writeHead(200, headers);
    response.end(body);
  } catch (error) {
    replyError(response, BridgeError.from(error));
  }
}

/** write() on either HTTP version (their overloads do not unify). */
export function writeChunk(response: HttpResponse, chunk: Uint8Array): boolean {
  return (response as ServerResponse).write(chunk);
}

export function drained(response: HttpResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      response.off("drain", done);
      response.off("close", done);
      resolve();
    };
    response.on("drain", done);
    response.on("close", done);
  });
}

/** The internal form of the call (DESIGN §5); the principal is the bridge's to resolve (S13). */
export function callContext(
  context: ListenerContext,
  op: OperationContract,
  request: HttpRequest,
  response: HttpResponse,
  codec: Codec,
): CallContext {
  const deadlineMs = parseConnectTimeout(headerValue(request.headers, "connect-timeout-ms"), Date.now());
  const bearer = headerValue(request.headers, "authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
  const abort = new AbortController();
  // The caller went away before its answer: the engine stops the work (S12, S15).
  response.once("close", () => {
    if (!response.writableFinished) abort.abort();
  });
  return {
    operation: op,
    metadata: requestMetadata(request.headers),
    deadlineMs,
    signal: abort.signal,
    principal: context.principals.resolve(bearer === undefined ? {} : { bearerToken: bearer }),
    codec,
  };
}

/** The session facts every answer carries (S1), as the bridge's own response headers. */
export function sessionHeaders(
  sessionId: string | undefined,
  messageId: string | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (sessionId !== undefined) out[Header.sessionId] = sessionId;
  if (messageId !== undefined) out[Header.messageId] = messageId;
  return out;
}

/**
 * A Connect unary error: the status from the one table (DESIGN §3) unless the HTTP layer
 * itself has a more precise one (415, 405), the JSON error body, the headers the process
 * sent with its fault and the session facts (S1, S14). A body refused for its size closes
 * the connection, so the rest of it is never read.
 */
export function replyError(
  response: HttpResponse,
  error: BridgeError,
  status = httpStatusOf(error.code),
  extra: OutgoingHttpHeaders = {},
): void {
  if (response.headersSent || response.writableEnded || response.destroyed) {
    response.destroy();
    return;
  }
  const body = Buffer.from(JSON.stringify(connectErrorJson(error)), "utf8");
  const headers: OutgoingHttpHeaders = { ...extra };
  putResponseMetadata(headers, error.headers);
  putResponseMetadata(headers, error.trailers, "trailer-");
  Object.assign(headers, faultSessionHeaders(error));
  headers["content-type"] = "application/json";
  headers["content-length"] = body.length;
  const tooLarge = error.code === Code.RESOURCE_EXHAUSTED && error.metadata.max_bytes !== undefined;
  if (tooLarge && "shouldKeepAlive" in response) response.shouldKeepAlive = false;
  response.writeHead(status, headers);
  response.end(body);
  if (tooLarge && "stream" in response) response.stream.close();
}

export function checkProtocolVersion(value: string | undefined): void {
  if (value !== undefined && value !== "1") {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_REQUEST,
      `connect-protocol-version must be 1, got ${JSON.stringify(value.slice(0, 16))}`,
    );
  }
}

/**
 * The message of one request envelope: flag 1 marks it compressed with the stream's
 * encoding, inflated within the size limit; any other flag is a protocol error.
 */
export async function envelopeData(
  envelope: { readonly flags: number; readonly data: Buffer },
  encoding: string | undefined,
  maxBytes: number,
): Promise<Buffer> {
  if (envelope.flags === 0) return envelope.data;
  if (envelope.flags !== 1) {
    throw new BridgeError(
      Code.INTERNAL,
      Reason.INVALID_REQUEST,
      `message flags ${envelope.flags} are not 0 or 1`,
    );
  }
  if (encoding === undefined || encoding === "identity") {
    throw new BridgeError(
      Code.INTERNAL,
      Reason.INVALID_REQUEST,
      "a message is marked compressed but the request names no compression",
    );
  }
  return gunzipBounded(envelope.data, maxBytes);
}

export function unsupportedEncoding(encoding: string): BridgeError {
  return new BridgeError(
    Code.UNIMPLEMENTED,
    Reason.INVALID_REQUEST,
    `compression ${JSON.stringify(encoding.slice(0, 32))} is not supported: use gzip or identity`,
  );
}

function badQuery(problem: string): BridgeError {
  return new BridgeError(Code.INVALID_ARGUMENT, Reason.INVALID_REQUEST, `GET request: ${problem}`);
}

export async function* single(message: Uint8Array): AsyncGenerator<Uint8Array> {
  yield message;
}
