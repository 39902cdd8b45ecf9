import { type Msg, type MsgHdrs, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import type { StreamCall, StreamEvent } from "../../bridge/call/call.js";
import { Header, type Metadata } from "../../bridge/call/metadata.js";
import type { OperationContract } from "../../bridge/contracts/contract.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { faultHeaders } from "./nats-error.js";
import { JSON_CONTENT_TYPE, NatsHeader, PROTO_CONTENT_TYPE, toNatsHeaders } from "./nats-headers.js";
import { callOf, type InboundContext, wantsJson } from "./nats-inbound.js";
import { requestedWindow, StreamHeader, StreamReplier } from "./nats-stream.js";

/** What serving one stream needs besides the request. */
export interface StreamServing {
  readonly context: InboundContext;
  readonly connection: NatsConnection;
  /** How long a full window may wait for an ack before the stream is given up. */
  readonly ackTimeoutMs: number;
}

/** Produces the events of one streaming call: the engine here, or the owner replica. */
export type StreamSource = (call: StreamCall) => AsyncIterable<StreamEvent>;

/**
 * Serves one server-streaming request from a NATS client (docs/nats.md "Streaming"):
 * the request's one message is the call's one request message; the reply subject gets
 * the head as soon as the bridge has admitted the call (S1: the session's id), each
 * response message as the process sends it, in order (S6), and the end with the status
 * (S14) and trailers. The engine is pulled only while the requester's window has room,
 * so a slow requester slows the process instead of growing a buffer; one that stops
 * acking, cancels or whose deadline passes (S15) ends the call in the engine too.
 */
export async function serveNatsStream(
  serving: StreamServing,
  op: OperationContract,
  msg: Msg,
): Promise<void> {
  const { context } = serving;
  const reply = msg.reply ?? "";
  const controller = new AbortController();
  const stop = (): void => controller.abort(context.signal.reason);
  context.signal.addEventListener("abort", stop, { once: true });
  let replier: StreamReplier | undefined;
  let json = false;
  try {
    json = wantsJson(msg);
    replier = new StreamReplier({
      connection: serving.connection,
      reply,
      window: requestedWindow(msg.headers?.get(StreamHeader.window) || undefined),
      ackTimeoutMs: serving.ackTimeoutMs,
      abort: (reason) => controller.abort(reason),
    });
    const unary = callOf(context, op, msg, controller.signal);
    const call: StreamCall = { ...unary, messages: single(unary.payload) };
    await relayEvents(context.listener.bridge.stream(call), replier, {
      contentType: json ? JSON_CONTENT_TYPE : PROTO_CONTENT_TYPE,
      encode: (payload) =>
        json ? Buffer.from(context.json.toJson(op.responseType, payload), "utf8") : payload,
    });
  } catch (failure) {
    const error = BridgeError.from(failure);
    if (replier === undefined) {
      // Refused before a stream was set up (a malformed window): a plain fault reply.
      msg.respond(new Uint8Array(0), { headers: faultHeaders(error) });
      return;
    }
    replier.end(faultHeaders(error));
  } finally {
    context.signal.removeEventListener("abort", stop);
    if (!controller.signal.aborted) controller.abort();
  }
}

export interface RelayFormat {
  readonly contentType: string;
  /** The response message in the requester's form. */
  readonly encode: (payload: Uint8Array) => Uint8Array;
}

/**
 * Sends a call's events as head, msgs and end. The process's headers go on the first
 * msg (or the end when there is none), its trailers on the end; a failure ends the stream
 * with the fault headers (S14) and the session facts (S1).
 */
export async function relayEvents(
  events: AsyncIterable<StreamEvent>,
  replier: StreamReplier,
  format: RelayFormat,
): Promise<void> {
  let session: Record<string, string> = {};
  let headers: Metadata | undefined;
  let trailers: Metadata = {};
  const own = (): Record<string, string> => ({ ...session, [NatsHeader.contentType]: format.contentType });
  try {
    for await (const event of events) {
      if (event.type === "session") {
        session = sessionFields(event.sessionId, event.messageId);
        replier.head(own());
      } else if (event.type === "headers") {
        headers = event.metadata;
      } else if (event.type === "message") {
        replier.head(own());
        const hdrs: MsgHdrs = headers === undefined ? natsHeaders() : toNatsHeaders(headers);
        headers = undefined;
        await replier.send(format.encode(event.payload), hdrs);
      } else {
        trailers = event.metadata;
      }
    }
  } catch (failure) {
    // The fault with the session facts (S1) and what the process sent before it (S14, S15).
    const error = BridgeError.from(failure);
    const hdrs = faultHeaders(error, own());
    for (const [key, values] of toNatsHeaders({ ...headers, ...trailers })) {
      if (!hdrs.has(key)) for (const value of values) hdrs.append(key, value);
    }
    replier.end(hdrs);
    return;
  }
  replier.end(toNatsHeaders({ ...headers, ...trailers }, own()));
}

function sessionFields(sessionId: string | undefined, messageId: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (sessionId !== undefined && sessionId !== "") out[Header.sessionId] = sessionId;
  if (messageId !== undefined && messageId !== "") out[Header.messageId] = messageId;
  return out;
}

async function* single(payload: Uint8Array): AsyncGenerator<Uint8Array> {
  yield payload;
}
