import type { OutgoingHttpHeaders } from "node:http";
import type { Metadata } from "../../bridge/call/metadata.js";
import type { OperationContract } from "../../bridge/contracts/contract.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { ListenerContext } from "../../bridge/listener/listener.js";
import { statusTrailers } from "../grpc/grpc-error.js";
import { parseGrpcTimeout } from "../grpc/grpc-wire-headers.js";
import { frameEnvelope, readEnvelopes } from "./connect-framing.js";
import { type CallTarget, drained, sessionHeaders, writeChunk } from "./connect-inbound.js";
import { readBody } from "./http-body.js";
import { headerValue, putResponseMetadata, requestMetadata } from "./http-metadata.js";
import type { HttpRequest, HttpResponse } from "./http-server.js";

/** The trailers frame of gRPC-Web: the high bit of the flags byte. */
const TRAILERS_FLAG = 0x80;

/** application/grpc-web[+proto] and application/grpc-web-text[+proto]: JSON is not part of gRPC-Web. */
export function grpcWebMode(type: string): "binary" | "text" | undefined {
  if (type === "application/grpc-web" || type === "application/grpc-web+proto") return "binary";
  if (type === "application/grpc-web-text" || type === "application/grpc-web-text+proto") return "text";
  return undefined;
}

/**
 * gRPC-Web (PROTOCOL-WEB.md), so browser gRPC clients reach the bridge without Envoy:
 * the request is gRPC's length-prefixed messages (base64 in the text mode), the response
 * the messages and then a trailers frame holding grpc-status, grpc-message and
 * grpc-status-details-bin written as HTTP/1 header lines. Unary and server streaming.
 */
export async function serveGrpcWeb(
  context: ListenerContext,
  op: OperationContract,
  mode: "binary" | "text",
  request: HttpRequest,
  response: HttpResponse,
  target: CallTarget,
): Promise<void> {
  const type = mode === "text" ? "application/grpc-web-text+proto" : "application/grpc-web+proto";
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
    if (op.requestStream) {
      throw new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.INVALID_REQUEST,
        `${op.path} streams requests, which gRPC-Web cannot carry; call it over gRPC`,
      );
    }
    const limit = context.maxPayloadBytes + 5;
    const raw = await readBody(request, mode === "text" ? Math.ceil((limit * 4) / 3) + 4 : limit);
    const body = mode === "text" ? Buffer.from(raw.toString("latin1"), "base64") : raw;
    const envelopes = readEnvelopes(body, context.maxPayloadBytes);
    if (envelopes.length !== 1 || envelopes[0]?.flags !== 0) {
      throw new BridgeError(
        Code.INVALID_ARGUMENT,
        Reason.INVALID_REQUEST,
        `expected one uncompressed request message, got ${envelopes.length}`,
      );
    }
    const payload = (envelopes[0] as { data: Buffer }).data;
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
      codec: "proto" as const,
    };
    let trailers: Metadata = {};
    if (!op.responseStream) {
      const reply = await target.unary({ ...call, payload });
      const headers: OutgoingHttpHeaders = {};
      putResponseMetadata(headers, reply.headers);
      start({ ...headers, ...sessionHeaders(reply.sessionId, reply.messageId) });
      await send(frameEnvelope(0, reply.payload));
      trailers = reply.trailers;
    } else {
      for await (const event of target.stream({ ...call, messages: single(payload) })) {
        if (event.type === "session") session = sessionHeaders(event.sessionId, event.messageId);
        else if (event.type === "headers") {
          const headers: OutgoingHttpHeaders = {};
          putResponseMetadata(headers, event.metadata);
          start({ ...headers, ...session });
        } else if (event.type === "message") {
          start(session);
          await send(frameEnvelope(0, event.payload));
        } else trailers = event.metadata;
      }
    }
    start(session);
    await send(frameEnvelope(TRAILERS_FLAG, trailerBlock(statusTrailers(Code.OK, "", trailers))));
    response.end();
  } catch (error) {
    if (response.destroyed || response.writableEnded) return;
    const fault = BridgeError.from(error);
    start(session);
    await send(
      frameEnvelope(
        TRAILERS_FLAG,
        trailerBlock(statusTrailers(fault.code, fault.message, {}, fault, session)),
      ),
    );
    response.end();
  }
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
