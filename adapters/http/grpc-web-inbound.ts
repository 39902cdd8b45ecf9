import type { OutgoingHttpHeaders } from "node:http";
import type { Metadata } from "../../bridge/call/metadata.js";
import type { JsonCodec } from "../../bridge/codec/json-codec.js";
import type { OperationContract } from "../../bridge/contracts/contract.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { ListenerContext } from "../../bridge/listener/listener.js";
import { statusTrailers } from "../grpc/grpc-error.js";
import { parseGrpcTimeout } from "../grpc/grpc-wire-headers.js";
import { frameEnvelope, readEnvelopes } from "./connect-framing.js";
import { type CallTarget, drained, envelopeData, sessionHeaders, writeChunk } from "./connect-inbound.js";
import { readBody } from "./http-body.js";
import { headerValue, putResponseMetadata, requestMetadata } from "./http-metadata.js";
import type { HttpRequest, HttpResponse } from "./http-server.js";

/** The trailers frame of gRPC-Web: the high bit of the flags byte. */
const TRAILERS_FLAG = 0x80;

/** How a gRPC-Web request is framed (binary, or base64 text) and which codec its messages use. */
export interface GrpcWebMode {
  readonly framing: "binary" | "text";
  readonly codec: "proto" | "json";
}

/**
 * application/grpc-web[+proto|+json] and application/grpc-web-text[+proto|+json]; JSON
 * messages are transcoded at this edge (DESIGN §7), as Connect's are.
 */
export function grpcWebMode(type: string): GrpcWebMode | undefined {
  const match = /^application\/grpc-web(-text)?(?:\+(proto|json))?$/.exec(type);
  if (match === null) return undefined;
  return {
    framing: match[1] === undefined ? "binary" : "text",
    codec: match[2] === "json" ? "json" : "proto",
  };
}

/**
 * gRPC-Web (PROTOCOL-WEB.md), so browser gRPC clients reach the bridge without Envoy:
 * the request is gRPC's length-prefixed messages (base64 in the text mode), the response
 * the messages and then a trailers frame holding grpc-status, grpc-message and
 * grpc-status-details-bin written as HTTP/1 header lines. Unary and server streaming.
 */
export async function serveGrpcWeb(
  context: ListenerContext,
  json: JsonCodec,
  op: OperationContract,
  web: GrpcWebMode,
  request: HttpRequest,
  response: HttpResponse,
  target: CallTarget,
): Promise<void> {
  const mode = web.framing;
  const type = `application/grpc-web${mode === "text" ? "-text" : ""}+${web.codec}`;
  const toWire = (payload: Uint8Array): Uint8Array =>
    web.codec === "json" ? Buffer.from(json.toJson(op.responseType, payload), "utf8") : payload;
  let started = false;
  const start = (headers: OutgoingHttpHeaders): void => {
    if (started) return;
    started = true;
    response.writeHead(200, { ...headers, "content-type": type });
  };
  const send = async (bytes: Buffer): Promise<void> => {
    const out = mode === "text" ? Buffer.from(bytes.toString("base64"), "latin1") : bytes;
    if (!writeChunk(response, out)) await drained(response);
  };
  let session: Record<string, string> = {};
  try {
    if (op.requestStream && op.responseStream) {
      throw new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.INVALID_REQUEST,
        `${op.path} is a bidirectional stream, which gRPC-Web cannot carry; call it over gRPC or Connect on HTTP/2`,
      );
    }
    const limit = context.maxPayloadBytes + 5;
    const raw = await readBody(request, mode === "text" ? Math.ceil((limit * 4) / 3) + 4 : limit);
    const body = mode === "text" ? Buffer.from(raw.toString("latin1"), "base64") : raw;
    const encoding = headerValue(request.headers, "grpc-encoding");
    if (encoding !== undefined && encoding !== "identity" && encoding !== "gzip") {
      throw new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.INVALID_REQUEST,
        `grpc-encoding ${JSON.stringify(encoding.slice(0, 32))} is not supported: use gzip or identity`,
      );
    }
    const envelopes = readEnvelopes(body, context.maxPayloadBytes);
    const envelope = envelopes[0];
    const toBinary = (data: Buffer): Uint8Array =>
      web.codec === "json" ? json.toBinary(op.requestType, data.toString("utf8")) : data;
    // Client streaming: gRPC-Web sends the whole request at once, so its messages are the
    // body's envelopes, read within the one body limit (nothing is held beyond it).
    const uploaded = op.requestStream
      ? await Promise.all(
          envelopes.map(async (e) => toBinary(await envelopeData(e, encoding, context.maxPayloadBytes))),
        )
      : undefined;
    if (uploaded === undefined && (envelopes.length !== 1 || envelope === undefined)) {
      throw new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.INVALID_REQUEST,
        `a unary or server-streaming call takes exactly one request message, got ${envelopes.length}`,
      );
    }
    const payload =
      uploaded !== undefined || envelope === undefined
        ? new Uint8Array(0)
        : toBinary(await envelopeData(envelope, encoding, context.maxPayloadBytes));
    const bearer = headerValue(request.headers, "authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
    const abort = new AbortController();
    response.once("close", () => {
      if (!response.writableFinished) abort.abort();
    });
    const call = {
      operation: op,
      metadata: requestMetadata(request.headers),
      deadlineMs: parseGrpcTimeout(headerValue(request.headers, "grpc-timeout"), Date.now()),
      signal: abort.signal,
      principal: context.principals.resolve(bearer === undefined ? {} : { bearerToken: bearer }),
      codec: web.codec,
    };
    let trailers: Metadata = {};
    if (!op.responseStream && uploaded === undefined) {
      const reply = await target.unary({ ...call, payload });
      const headers: OutgoingHttpHeaders = {};
      putResponseMetadata(headers, reply.headers);
      start({ ...headers, ...sessionHeaders(reply.sessionId, reply.messageId) });
      await send(frameEnvelope(0, toWire(reply.payload)));
      trailers = reply.trailers;
    } else {
      const messages = uploaded === undefined ? single(payload) : listed(uploaded);
      for await (const event of target.stream({ ...call, messages })) {
        if (event.type === "session") session = sessionHeaders(event.sessionId, event.messageId);
        else if (event.type === "headers") {
          const headers: OutgoingHttpHeaders = {};
          putResponseMetadata(headers, event.metadata);
          start({ ...headers, ...session });
        } else if (event.type === "message") {
          start(session);
          await send(frameEnvelope(0, toWire(event.payload)));
        } else trailers = event.metadata;
      }
    }
    start(session);
    await send(frameEnvelope(TRAILERS_FLAG, trailerBlock(statusTrailers(Code.OK, "", trailers))));
    response.end();
  } catch (error) {
    if (response.destroyed || response.writableEnded) return;
    const fault = BridgeError.from(error);
    // S14, S15: the headers a process sent with its fault reach the caller, as on success.
    const headers: OutgoingHttpHeaders = {};
    putResponseMetadata(headers, fault.headers);
    start({ ...headers, ...session });
    await send(
      frameEnvelope(
        TRAILERS_FLAG,
        trailerBlock(statusTrailers(fault.code, fault.message, {}, fault, session)),
      ),
    );
    response.end();
  }
}

/** True for every gRPC-Web content type, including codecs the bridge does not read. */
export function isGrpcWebType(type: string): boolean {
  return type.startsWith("application/grpc-web");
}

/**
 * A fault answered before a gRPC-Web call started (unknown method, wrong verb, a codec
 * the bridge cannot read), in gRPC-Web's trailers-only form: HTTP 200 with the status in
 * the headers, which gRPC-Web clients read as they read any status (S14).
 */
export function replyGrpcWebError(response: HttpResponse, error: BridgeError): void {
  if (response.headersSent || response.writableEnded || response.destroyed) {
    response.destroy();
    return;
  }
  const headers: OutgoingHttpHeaders = { "content-type": "application/grpc-web+proto" };
  Object.assign(headers, statusTrailers(error.code, error.message, {}, error));
  response.writeHead(200, headers);
  response.end();
}

/** Trailers as the HTTP/1 header block gRPC-Web puts in its trailers frame. */
function trailerBlock(trailers: OutgoingHttpHeaders): Buffer {
  let text = "";
  for (const [key, value] of Object.entries(trailers)) {
    if (value === undefined) continue;
    for (const one of Array.isArray(value) ? value : [value]) text += `${key}: ${String(one)}\r\n`;
  }
  return Buffer.from(text, "latin1");
}

async function* single(message: Uint8Array): AsyncGenerator<Uint8Array> {
  yield message;
}

async function* listed(messages: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* messages;
}
