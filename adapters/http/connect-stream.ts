import type { OutgoingHttpHeaders } from "node:http";
import http2 from "node:http2";
import type { Metadata } from "../../bridge/call/metadata.js";
import type { OperationContract } from "../../bridge/contracts/contract.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { PullQueue } from "../grpc/pull-queue.js";
import { connectErrorJson, faultSessionHeaders } from "./connect-error.js";
import {
  END_STREAM_FLAG,
  type Envelope,
  EnvelopeReader,
  frameEnvelope,
  readEnvelopes,
} from "./connect-framing.js";
import {
  type CallTarget,
  type Codec,
  type ConnectServing,
  callContext,
  checkProtocolVersion,
  drained,
  envelopeData,
  sessionHeaders,
  single,
  unsupportedEncoding,
  writeChunk,
} from "./connect-inbound.js";
import { readBody } from "./http-body.js";
import { headerValue, putResponseMetadata } from "./http-metadata.js";
import type { HttpRequest, HttpResponse } from "./http-server.js";

/**
 * A streaming call in the Connect streaming format (connectrpc.com/docs/protocol,
 * "Streaming-Request"): enveloped request messages, then enveloped response messages as
 * the process sends them, then the end-stream message with the trailers and, on failure,
 * the error. Server streaming takes exactly one request message; client and bidi
 * streaming take the request's envelopes as they arrive, so a long upload is never held
 * whole. Bidi streaming needs HTTP/2 (the protocol's rule: HTTP/1.1 cannot interleave the
 * two directions). Both directions have backpressure: a request that the process does
 * not take stops being read, and the next response message waits until the client has
 * taken the last (S6 order), so neither a slow process nor a slow client grows memory.
 */
export async function serveStream(
  serving: ConnectServing,
  op: OperationContract,
  codec: Codec,
  request: HttpRequest,
  response: HttpResponse,
  target: CallTarget,
): Promise<void> {
  let started = false;
  const start = (extra: OutgoingHttpHeaders): void => {
    if (started) return;
    started = true;
    response.writeHead(200, { ...extra, "content-type": `application/connect+${codec}` });
  };
  let session: Record<string, string> = {};
  let trailers: Metadata = {};
  try {
    checkProtocolVersion(headerValue(request.headers, "connect-protocol-version"));
    if (op.requestStream && op.responseStream && request.httpVersionMajor < 2) {
      throw new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.INVALID_REQUEST,
        `${op.path} is a bidirectional stream, which needs HTTP/2`,
      );
    }
    const encoding = headerValue(request.headers, "connect-content-encoding");
    if (encoding !== undefined && encoding !== "identity" && encoding !== "gzip")
      throw unsupportedEncoding(encoding);
    const call = callContext(serving.context, op, request, response, codec);
    const maxBytes = serving.context.maxPayloadBytes;
    const transcode = (data: Buffer): Uint8Array =>
      codec === "json" ? serving.json.toBinary(op.requestType, data.toString("utf8")) : data;
    let messages: AsyncIterable<Uint8Array>;
    if (op.requestStream) {
      messages = decodeEach(requestEnvelopes(request, maxBytes), encoding, maxBytes, transcode);
    } else {
      const body = await readBody(request, maxBytes + 5);
      const envelopes = readEnvelopes(body, maxBytes);
      const envelope = envelopes[0];
      if (envelopes.length !== 1 || envelope === undefined) {
        // As gRPC answers it: the method as called (with no message, or several) does not exist.
        throw new BridgeError(
          Code.UNIMPLEMENTED,
          Reason.INVALID_REQUEST,
          `a server-streaming call takes exactly one request message, got ${envelopes.length}`,
        );
      }
      messages = single(transcode(await envelopeData(envelope, encoding, maxBytes)));
    }
    for await (const event of target.stream({ ...call, messages })) {
      if (event.type === "session") session = sessionHeaders(event.sessionId, event.messageId);
      else if (event.type === "headers") {
        const headers: OutgoingHttpHeaders = { ...session };
        putResponseMetadata(headers, event.metadata);
        start(headers);
      } else if (event.type === "message") {
        start(session);
        const bytes =
          codec === "json"
            ? Buffer.from(serving.json.toJson(op.responseType, event.payload), "utf8")
            : Buffer.from(event.payload);
        if (!writeChunk(response, frameEnvelope(0, bytes))) await drained(response);
      } else {
        trailers = event.metadata;
      }
    }
    start(session);
    response.end(frameEnvelope(END_STREAM_FLAG, endStream(trailers, undefined)));
  } catch (error) {
    const fault = BridgeError.from(error);
    if (response.writableEnded || response.destroyed) return;
    start({ ...session, ...faultSessionHeaders(fault) });
    response.end(frameEnvelope(END_STREAM_FLAG, endStream({ ...fault.trailers, ...trailers }, fault)));
    // A request refused mid-stream (a message over the limit) is not read any further:
    // the stream is reset once the answer is out (HTTP/2), the connection closed (HTTP/1.1).
    if (!request.readableEnded) {
      if ("stream" in response) response.stream.close(http2.constants.NGHTTP2_NO_ERROR);
      else response.once("finish", () => response.socket?.destroy());
    }
  }
}

/**
 * The request's envelopes as they arrive. Each declared length is checked against the
 * limit before any of it is buffered (EnvelopeReader), and past PullQueue.HIGH_WATER
 * envelopes not yet taken by the engine the request stops being read: what waits here is
 * bounded by that many messages of at most the limit each.
 */
function requestEnvelopes(request: HttpRequest, maxBytes: number): AsyncIterable<Envelope> {
  const queue = new PullQueue<Envelope>(
    () => request.pause(),
    () => request.resume(),
  );
  const reader = new EnvelopeReader(maxBytes);
  const onData = (chunk: Buffer): void => {
    try {
      for (const envelope of reader.push(chunk)) queue.push(envelope);
    } catch (error) {
      request.off("data", onData);
      request.pause();
      queue.fail(error);
    }
  };
  request.on("data", onData);
  request.once("end", () => {
    try {
      reader.end();
      queue.end();
    } catch (error) {
      queue.fail(error);
    }
  });
  request.once("close", () => {
    if (!request.readableEnded) {
      queue.fail(new BridgeError(Code.CANCELLED, Reason.CANCELLED, "the request stream broke off"));
    }
  });
  return queue;
}

/** Each envelope's message, inflated within the limit and transcoded, in order. */
async function* decodeEach(
  envelopes: AsyncIterable<Envelope>,
  encoding: string | undefined,
  maxBytes: number,
  transcode: (data: Buffer) => Uint8Array,
): AsyncGenerator<Uint8Array> {
  for await (const envelope of envelopes) {
    if (envelope.flags === END_STREAM_FLAG) {
      throw new BridgeError(
        Code.INVALID_ARGUMENT,
        Reason.INVALID_REQUEST,
        "a request stream carries no end-stream message: it ends with the body",
      );
    }
    yield transcode(await envelopeData(envelope, encoding, maxBytes));
  }
}

function endStream(trailers: Metadata, error: BridgeError | undefined): Buffer {
  const metadata: OutgoingHttpHeaders = {};
  putResponseMetadata(metadata, trailers);
  const asLists: Record<string, string[]> = {};
  for (const [key, value] of Object.entries(metadata)) {
    asLists[key] = Array.isArray(value) ? value.map(String) : [String(value)];
  }
  const body: Record<string, unknown> = {};
  if (error !== undefined) body.error = connectErrorJson(error);
  if (Object.keys(asLists).length > 0) body.metadata = asLists;
  return Buffer.from(JSON.stringify(body), "utf8");
}
