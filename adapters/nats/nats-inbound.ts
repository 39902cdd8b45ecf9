import type { Msg } from "@nats-io/transport-node";
import type { UnaryCall, UnaryReply } from "../../bridge/call/call.js";
import { Header } from "../../bridge/call/metadata.js";
import type { JsonCodec } from "../../bridge/codec/json-codec.js";
import type { OperationContract } from "../../bridge/contracts/contract.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { ListenerContext } from "../../bridge/listener/listener.js";
import { faultHeaders } from "./nats-error.js";
import {
  deadlineOf,
  isJson,
  JSON_CONTENT_TYPE,
  metadataOf,
  NatsHeader,
  PROTO_CONTENT_TYPE,
  toNatsHeaders,
  withoutNatsHeaders,
} from "./nats-headers.js";

/** What one inbound message handler needs besides the message. */
export interface InboundContext {
  readonly listener: ListenerContext;
  readonly json: JsonCodec;
  /** Aborts when the listener stops for good: NATS has no per-request cancel. */
  readonly signal: AbortSignal;
}

/**
 * Serves one NATS request for a unary operation: transcodes JSON at the edge (DESIGN §7),
 * reads the session facts and the deadline from the headers (S1, S7, S8, S15) and answers
 * on the reply subject with the session facts (S1) or a fault (S14). A one-way publish
 * without a reply subject is accepted all the same; with one, it is answered once
 * journaled (S9). `extraMetadata` lets the durable intake add its idempotency key (S8).
 */
export async function serveUnary(
  context: InboundContext,
  op: OperationContract,
  msg: { readonly data: Uint8Array; readonly headers?: Msg["headers"] | undefined },
  extraMetadata: Readonly<Record<string, readonly string[]>> = {},
): Promise<UnaryReply> {
  return context.listener.bridge.unary(callOf(context, op, msg, context.signal, extraMetadata));
}

/**
 * A NATS request as the bridge's one internal call form: the payload checked for size
 * before any copy and transcoded from JSON at the edge (DESIGN §7), the session facts and
 * the deadline from the headers (S1, S7, S8, S15), the principal from the credentials (S13).
 */
export function callOf(
  context: InboundContext,
  op: OperationContract,
  msg: { readonly data: Uint8Array; readonly headers?: Msg["headers"] | undefined },
  signal: AbortSignal,
  extraMetadata: Readonly<Record<string, readonly string[]>> = {},
): UnaryCall {
  const { listener } = context;
  const received = metadataOf(msg.headers);
  const json = isJson(received);
  // Checked before any copy or transcoding (robustness: lengths before allocation).
  if (msg.data.byteLength > listener.maxPayloadBytes) {
    throw new BridgeError(
      Code.RESOURCE_EXHAUSTED,
      Reason.INVALID_REQUEST,
      `request of ${msg.data.byteLength} bytes exceeds the limit of ${listener.maxPayloadBytes} bytes`,
      { metadata: { max_bytes: String(listener.maxPayloadBytes) } },
    );
  }
  const payload = json
    ? context.json.toBinary(op.requestType, Buffer.from(msg.data).toString("utf8"))
    : msg.data;
  const authorization = received.authorization?.[0];
  const bearer = authorization?.match(/^Bearer\s+(.+)$/i)?.[1];
  return {
    operation: op,
    metadata: { ...withoutNatsHeaders(received), ...extraMetadata },
    deadlineMs: deadlineOf(received, Date.now()),
    signal,
    principal: listener.principals.resolve(bearer === undefined ? {} : { bearerToken: bearer }),
    codec: json ? "json" : "proto",
    payload,
  };
}

/** Answers a NATS request: the reply's payload in the caller's form, with the session facts (S1). */
export function respondOk(
  msg: Msg,
  reply: UnaryReply,
  json: boolean,
  op: OperationContract,
  codec: JsonCodec,
): void {
  if (msg.reply === undefined || msg.reply === "") return;
  const own: Record<string, string> = {
    [NatsHeader.contentType]: json ? JSON_CONTENT_TYPE : PROTO_CONTENT_TYPE,
  };
  if (reply.sessionId !== undefined) own[Header.sessionId] = reply.sessionId;
  if (reply.messageId !== undefined) own[Header.messageId] = reply.messageId;
  const body = json ? Buffer.from(codec.toJson(op.responseType, reply.payload), "utf8") : reply.payload;
  msg.respond(body, { headers: toNatsHeaders({ ...reply.headers, ...reply.trailers }, own) });
}

/** Answers a NATS request with a fault (S14); nothing is sent when the caller left no reply subject. */
export function respondFault(msg: Msg, error: BridgeError): void {
  if (msg.reply === undefined || msg.reply === "") return;
  msg.respond(new Uint8Array(0), { headers: faultHeaders(error) });
}

/** True when the caller asked for JSON (Content-Type: application/json). */
export function wantsJson(msg: Pick<Msg, "headers">): boolean {
  return isJson(metadataOf(msg.headers));
}
