import {
  errors,
  type Msg,
  type NatsConnection,
  headers as natsHeaders,
  type Subscription,
} from "@nats-io/transport-node";
import type { StreamCall, StreamEvent, UnaryCall, UnaryReply } from "../../bridge/call/call.js";
import { Header, isBridgeOwned, type Metadata } from "../../bridge/call/metadata.js";
import type { ClusterBridge, Forwarder } from "../../bridge/cluster/cluster-bridge.js";
import type { ContractSet } from "../../bridge/contracts/contract.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { type Logger, silentLogger } from "../../bridge/logger.js";
import type { SessionRecord } from "../../bridge/store/records.js";
import { faultHeaders, faultOf } from "./nats-error.js";
import { isNatsTransportField, metadataOf } from "./nats-headers.js";
import {
  DEFAULT_STREAM_ACK_TIMEOUT_MS,
  DEFAULT_STREAM_WINDOW,
  requestedWindow,
  requestStream,
  StreamHeader,
  StreamReplier,
  streamKindOf,
} from "./nats-stream.js";
import { relayEvents } from "./nats-stream-inbound.js";

/**
 * Calls between replicas (DESIGN §7): a replica that receives a call for a partition
 * another replica owns sends it to `<prefix>.cluster.<owner>` with NATS request-reply.
 * The message carries the call exactly as the engine takes it — operation, metadata
 * (sb-session-id, sb-seq, Idempotency-Key, traceparent and custom keys, S1/S7/S8/S15),
 * the resolved principal (S13), the codec and the remaining deadline — and the reply the
 * owner's answer: the payload and session facts, or the fault as the NATS adapter's
 * sb-status-bin (code, reason, message, details and metadata, S14), so the caller gets
 * what the owner said unchanged. The subject is internal: only replicas of the cluster
 * may publish there (NATS permissions), since it trusts the principal it is given.
 *
 * Wire form of both messages: a 4-byte big-endian length, a JSON head of that length,
 * then the payload bytes.
 */
export interface ClusterForwardingOptions {
  readonly connection: NatsConnection;
  readonly prefix: string;
  readonly replica: string;
  readonly contracts: ContractSet;
  /** Largest message accepted: the request payload plus its head. */
  readonly maxPayloadBytes: number;
  /** How long a forwarded call without a deadline may take before it is UNAVAILABLE. */
  readonly defaultTimeoutMs?: number;
  /** Forwarded calls served at once; more are answered UNAVAILABLE (bounded, DESIGN §7). */
  readonly maxInflight?: number;
  readonly logger?: Logger;
}

interface CallHead {
  /** Set for a forwarded SessionService Close: the session to close (S12). */
  readonly close?: string;
  readonly operation: string;
  readonly metadata: Metadata;
  readonly principal: string;
  readonly codec: "proto" | "json";
  readonly timeoutMs: number | undefined;
  /** A server-streaming call: the answer comes in the stream framing of nats-stream.ts. */
  readonly stream?: true;
}

interface ReplyHead {
  readonly sessionId: string | undefined;
  readonly messageId: string | undefined;
  readonly headers: Metadata;
  readonly trailers: Metadata;
}

const DEFAULT_TIMEOUT_MS = 60_000;
/** A forwarded stream without a deadline may last a day, as a stream to a process does. */
const NO_DEADLINE_STREAM_MS = 24 * 3600 * 1000;
const DEFAULT_MAX_INFLIGHT = 4096;
/** Room for the head beside the payload: metadata is bounded by the adapters that took it. */
const HEAD_ALLOWANCE_BYTES = 256 * 1024;

export function clusterSubject(prefix: string, replica: string): string {
  return `${prefix}.cluster.${replica}`;
}

/** The client side: sends a call to its owner and returns the owner's answer. */
export function createNatsForwarder(options: ClusterForwardingOptions): Forwarder {
  const { connection, prefix } = options;
  const maxBytes = options.maxPayloadBytes + HEAD_ALLOWANCE_BYTES;
  return {
    async unary(replica, call) {
      const now = Date.now();
      const remaining = call.deadlineMs === undefined ? undefined : call.deadlineMs - now;
      if (remaining !== undefined && remaining <= 0) {
        throw new BridgeError(
          Code.DEADLINE_EXCEEDED,
          Reason.DEADLINE_EXCEEDED,
          "deadline passed before forwarding",
        );
      }
      const head: CallHead = {
        operation: call.operation.path,
        metadata: call.metadata,
        principal: call.principal,
        codec: call.codec,
        timeoutMs: remaining,
      };
      let msg: Msg;
      try {
        msg = await connection.request(clusterSubject(prefix, replica), frame(head, call.payload), {
          timeout: remaining ?? options.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS,
        });
      } catch (error) {
        throw forwardFailure(replica, error, call.deadlineMs);
      }
      const fault = faultOf(metadataOf(msg.headers), {});
      if (fault !== undefined) throw fault;
      const { head: reply, payload } = unframe<ReplyHead>(msg.data, maxBytes);
      return {
        sessionId: reply.sessionId,
        messageId: reply.messageId,
        headers: reply.headers,
        trailers: reply.trailers,
        payload,
      };
    },

    stream(replica, call) {
      return forwardStream(options, replica, call, maxBytes);
    },

    async close(replica, sessionId, principal) {
      const head: CallHead = {
        close: sessionId,
        operation: "",
        metadata: {},
        principal,
        codec: "proto",
        timeoutMs: undefined,
      };
      let msg: Msg;
      try {
        msg = await connection.request(clusterSubject(prefix, replica), frame(head, new Uint8Array(0)), {
          timeout: options.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS,
        });
      } catch (error) {
        throw forwardFailure(replica, error, undefined);
      }
      const fault = faultOf(metadataOf(msg.headers), {});
      if (fault !== undefined) throw fault;
      return unframe<SessionRecord>(msg.data, maxBytes).head;
    },
  };
}

/** The server side: serves calls forwarded to this replica. stop() unsubscribes. */
export function serveForwardedCalls(
  bridge: ClusterBridge,
  options: ClusterForwardingOptions,
): { stop(): Promise<void> } {
  const logger = options.logger ?? silentLogger;
  const maxBytes = options.maxPayloadBytes + HEAD_ALLOWANCE_BYTES;
  const maxInflight = options.maxInflight ?? DEFAULT_MAX_INFLIGHT;
  const controller = new AbortController();
  let inflight = 0;
  const sub: Subscription = options.connection.subscribe(clusterSubject(options.prefix, options.replica), {
    callback: (error, msg) => {
      if (error !== null) {
        logger.warn({ err: error }, "forwarded-call subscription failed");
        return;
      }
      if (inflight >= maxInflight) {
        respondFault(msg, new BridgeError(Code.UNAVAILABLE, Reason.PARTITION_MOVING, "replica busy; retry"));
        return;
      }
      inflight++;
      if (isStreamRequest(msg)) {
        serveForwardedStream(bridge, options, msg, maxBytes, controller.signal)
          .catch((failure: unknown) => logger.warn({ err: failure }, "cannot answer a forwarded stream"))
          .finally(() => {
            inflight--;
          });
        return;
      }
      serveOne(bridge, options.contracts, msg, maxBytes, controller.signal)
        .then(
          (reply) => (isRecord(reply) ? msg.respond(frame(reply, new Uint8Array(0))) : respondOk(msg, reply)),
          (failure: unknown) => respondFault(msg, BridgeError.from(failure)),
        )
        .catch((failure: unknown) => logger.warn({ err: failure }, "cannot answer a forwarded call"))
        .finally(() => {
          inflight--;
        });
    },
  });
  return {
    async stop() {
      controller.abort();
      sub.unsubscribe();
    },
  };
}

/**
 * Streams between replicas (docs/nats.md "Streaming"): the request is the framed call head
 * (with `stream: true`) and its one request message; the owner answers on the reply
 * subject with head, msgs and end, the end carrying the fault exactly as the NATS adapter
 * writes it (S14). The window and acks bound what either replica holds, and the forwarding
 * replica's caller going away cancels the owner's call (sb-stream-cancel).
 */
async function* forwardStream(
  options: ClusterForwardingOptions,
  replica: string,
  call: StreamCall,
  maxBytes: number,
): AsyncGenerator<StreamEvent> {
  if (call.operation.requestStream) {
    throw new BridgeError(
      Code.UNIMPLEMENTED,
      Reason.UNSUPPORTED_ON_STREAM,
      `${call.operation.path} takes a stream of requests; such calls are served only by the session's owner`,
    );
  }
  const remaining = call.deadlineMs === undefined ? undefined : call.deadlineMs - Date.now();
  if (remaining !== undefined && remaining <= 0) {
    throw new BridgeError(
      Code.DEADLINE_EXCEEDED,
      Reason.DEADLINE_EXCEEDED,
      "deadline passed before forwarding",
    );
  }
  let request: Uint8Array | undefined;
  for await (const message of call.messages) {
    request = message;
    break;
  }
  if (request === undefined) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.MALFORMED_MESSAGE,
      `${call.operation.path}: the call sent no request message`,
    );
  }
  const head: CallHead = {
    operation: call.operation.path,
    metadata: call.metadata,
    principal: call.principal,
    codec: call.codec,
    timeoutMs: remaining,
    stream: true,
  };
  const hdrs = natsHeaders();
  hdrs.set(StreamHeader.kind, "request");
  let first = true;
  for await (const part of requestStream(
    options.connection,
    clusterSubject(options.prefix, replica),
    frame(head, request),
    {
      headers: hdrs,
      window: DEFAULT_STREAM_WINDOW,
      timeoutMs: remaining ?? NO_DEADLINE_STREAM_MS,
      signal: call.signal,
      maxPayloadBytes: maxBytes,
      noResponders: () => forwardFailure(replica, new errors.NoRespondersError(""), call.deadlineMs),
      timedOut: () =>
        new BridgeError(
          Code.DEADLINE_EXCEEDED,
          Reason.DEADLINE_EXCEEDED,
          `replica ${replica} did not end the stream in time`,
        ),
    },
  )) {
    const metadata = metadataOf(part.msg.headers);
    if (part.kind === "head") {
      yield {
        type: "session",
        sessionId: metadata[Header.sessionId]?.[0],
        messageId: metadata[Header.messageId]?.[0],
      };
      continue;
    }
    if (part.kind === "msg") {
      if (first) {
        first = false;
        yield { type: "headers", metadata: passedMetadata(metadata) };
      }
      yield { type: "message", payload: part.msg.data };
      continue;
    }
    const fault = faultOf(metadata, {});
    if (fault !== undefined) throw fault;
    if (streamKindOf(part.msg.headers) === undefined)
      throw malformed("a stream answered with a single reply");
    yield { type: "trailers", metadata: passedMetadata(metadata) };
    return;
  }
  throw forwardFailure(replica, new Error("the stream ended without its end message"), call.deadlineMs);
}

/** A forwarded streaming call, served here when this replica owns its session. */
async function serveForwardedStream(
  bridge: ClusterBridge,
  options: ClusterForwardingOptions,
  msg: Msg,
  maxBytes: number,
  signal: AbortSignal,
): Promise<void> {
  const controller = new AbortController();
  const stop = (): void => controller.abort(signal.reason);
  signal.addEventListener("abort", stop, { once: true });
  let replier: StreamReplier | undefined;
  try {
    replier = new StreamReplier({
      connection: options.connection,
      reply: msg.reply ?? "",
      window: requestedWindow(msg.headers?.get(StreamHeader.window) || undefined),
      ackTimeoutMs: DEFAULT_STREAM_ACK_TIMEOUT_MS,
      abort: (reason) => controller.abort(reason),
    });
    const { head, payload } = unframe<CallHead>(msg.data, maxBytes);
    const call: StreamCall = {
      ...forwardedCall(options.contracts, head, controller.signal),
      messages: single(payload),
    };
    // Payloads stay binary between replicas: the receiving replica's adapter transcodes.
    await relayEvents(bridge.serveForwardedStream(call), replier, {
      contentType: "application/protobuf",
      encode: (bytes) => bytes,
    });
  } catch (failure) {
    const error = BridgeError.from(failure);
    if (replier === undefined) respondFault(msg, error);
    else replier.end(faultHeaders(error));
  } finally {
    signal.removeEventListener("abort", stop);
    if (!controller.signal.aborted) controller.abort();
  }
}

function isStreamRequest(msg: Msg): boolean {
  return msg.headers?.get(StreamHeader.kind) === "request";
}

/** What a forwarded stream's headers and trailers pass on: not NATS's own, not sb-* (S13, S15). */
function passedMetadata(metadata: Record<string, string[]>): Metadata {
  const out: Record<string, readonly string[]> = {};
  for (const [key, values] of Object.entries(metadata)) {
    if (!isNatsTransportField(key) && !isBridgeOwned(key)) out[key] = values;
  }
  return out;
}

async function* single(payload: Uint8Array): AsyncGenerator<Uint8Array> {
  yield payload;
}

async function serveOne(
  bridge: ClusterBridge,
  contracts: ContractSet,
  msg: Msg,
  maxBytes: number,
  signal: AbortSignal,
): Promise<UnaryReply | SessionRecord> {
  const { head, payload } = unframe<CallHead>(msg.data, maxBytes);
  if (typeof head.close === "string") return bridge.serveForwardedClose(head.close, head.principal);
  const call: UnaryCall = { ...forwardedCall(contracts, head, signal), payload };
  return bridge.serveForwarded(call);
}

/**
 * The caller's facts as the forwarding replica sent them: the operation resolved here, the
 * remaining deadline made absolute again on this replica's clock (S15).
 */
function forwardedCall(
  contracts: ContractSet,
  head: CallHead,
  signal: AbortSignal,
): Omit<UnaryCall, "payload"> {
  const operation = contracts.operations.get(head.operation);
  if (operation === undefined) {
    throw new BridgeError(
      Code.UNIMPLEMENTED,
      Reason.UNKNOWN_OPERATION,
      `${head.operation} is not served here`,
    );
  }
  return {
    operation,
    metadata: head.metadata,
    deadlineMs: head.timeoutMs === undefined ? undefined : Date.now() + head.timeoutMs,
    signal,
    principal: head.principal,
    codec: head.codec,
  };
}

function isRecord(reply: UnaryReply | SessionRecord): reply is SessionRecord {
  return "state" in reply;
}

function respondOk(msg: Msg, reply: UnaryReply): void {
  const head: ReplyHead = {
    sessionId: reply.sessionId,
    messageId: reply.messageId,
    headers: reply.headers,
    trailers: reply.trailers,
  };
  msg.respond(frame(head, reply.payload));
}

function respondFault(msg: Msg, error: BridgeError): void {
  msg.respond(new Uint8Array(0), { headers: faultHeaders(error) });
}

function frame(head: object, payload: Uint8Array): Uint8Array {
  const json = Buffer.from(JSON.stringify(head), "utf8");
  const out = Buffer.allocUnsafe(4 + json.length + payload.byteLength);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  out.set(payload, 4 + json.length);
  return out;
}

/** Reads a framed message; lengths are checked before anything is copied. */
function unframe<T>(data: Uint8Array, maxBytes: number): { head: T; payload: Uint8Array } {
  if (data.byteLength < 4 || data.byteLength > maxBytes) throw malformed(`${data.byteLength} bytes`);
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const headLength = view.readUInt32BE(0);
  if (headLength > data.byteLength - 4) throw malformed("head longer than the message");
  let head: T;
  try {
    head = JSON.parse(view.toString("utf8", 4, 4 + headLength)) as T;
  } catch {
    throw malformed("head is not JSON");
  }
  return { head, payload: data.subarray(4 + headLength) };
}

function malformed(why: string): BridgeError {
  return new BridgeError(Code.INTERNAL, Reason.INTERNAL, `malformed call between replicas: ${why}`);
}

/** No responder: the owner is gone (UNAVAILABLE, retry); no answer in time: the deadline, or UNAVAILABLE. */
function forwardFailure(replica: string, error: unknown, deadlineMs: number | undefined): BridgeError {
  if (
    error instanceof errors.NoRespondersError ||
    (error instanceof Error && /no responders/i.test(error.message))
  ) {
    return new BridgeError(
      Code.UNAVAILABLE,
      Reason.PARTITION_MOVING,
      `replica ${replica}, the owner of the session's partition, is not reachable; retry`,
    );
  }
  if (deadlineMs !== undefined && Date.now() >= deadlineMs - 5) {
    return new BridgeError(
      Code.DEADLINE_EXCEEDED,
      Reason.DEADLINE_EXCEEDED,
      `replica ${replica} did not answer in time`,
    );
  }
  return new BridgeError(
    Code.UNAVAILABLE,
    Reason.PARTITION_MOVING,
    `replica ${replica} did not answer: ${error instanceof Error ? error.message : String(error)}; retry`,
  );
}
