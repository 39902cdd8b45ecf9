import { errors, type Msg, type NatsConnection } from "@nats-io/transport-node";
import { isBridgeOwned } from "../../bridge/call/metadata.js";
import { createJsonCodec, type JsonCodec } from "../../bridge/codec/json-codec.js";
import type { ContractSet } from "../../bridge/contracts/contract.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { deliveryHeaders } from "../../bridge/process/delivery-headers.js";
import type {
  ProcessClient,
  ProcessReply,
  ProcessStreamEvent,
  ProcessTarget,
  ProcessTransport,
  StreamDelivery,
  UnaryDelivery,
} from "../../bridge/process/process-client.js";
import { faultOf } from "./nats-error.js";
import {
  isJson,
  isNatsTransportField,
  JSON_CONTENT_TYPE,
  metadataOf,
  NatsHeader,
  PROTO_CONTENT_TYPE,
  toNatsHeaders,
} from "./nats-headers.js";
import { DEFAULT_STREAM_WINDOW, requestStream, streamKindOf } from "./nats-stream.js";

/**
 * A request with no deadline still needs a timer in NATS request-reply: a day, so a
 * process that never answers cannot hold the call forever.
 */
const NO_DEADLINE_TIMEOUT_MS = 24 * 3600 * 1000;

export interface NatsTransportOptions {
  readonly connection: NatsConnection;
  readonly contracts: ContractSet;
  /** Largest reply accepted from a process, in bytes. */
  readonly maxPayloadBytes: number;
}

/**
 * Processes at `nats://<subject-prefix>`: each unary or one-way delivery is a NATS
 * request on `<prefix>.<Method>` (server streams use the framing of nats-stream.ts) with the session facts and the remaining deadline as
 * headers (S1, S15). `?codec=json` sends protobuf JSON instead of binary (DESIGN §7).
 * No responders is UNAVAILABLE (retryable, S11); a timeout is DEADLINE_EXCEEDED; a fault
 * reply comes back with its exact code, reason and details (S14).
 */
export function createNatsTransport(options: NatsTransportOptions): ProcessTransport {
  const json = createJsonCodec(options.contracts, { maxInputBytes: options.maxPayloadBytes });
  return {
    schemes: ["nats"],
    connect: (target) => createNatsProcessClient(options, target, json),
  };
}

function createNatsProcessClient(
  options: NatsTransportOptions,
  target: ProcessTarget,
  json: JsonCodec,
): ProcessClient {
  if (target.envelope) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_CONFIG,
      `process ${target.name}: envelope-native processes are reached over gRPC, not nats://`,
    );
  }
  const prefix = `${target.location.hostname}${target.location.pathname.replace(/\/+$/, "").replaceAll("/", ".")}`;
  const asJson = target.location.searchParams.get("codec") === "json";
  const { connection } = options;
  return {
    async unary(delivery: UnaryDelivery): Promise<ProcessReply> {
      const op = delivery.operation;
      const subject = `${prefix}.${op.name}`;
      const remainingMs =
        delivery.deadlineMs === undefined
          ? undefined
          : Math.max(1, Math.ceil(delivery.deadlineMs - Date.now()));
      const own: Record<string, string> = {
        ...deliveryHeaders(delivery),
        [NatsHeader.contentType]: asJson ? JSON_CONTENT_TYPE : PROTO_CONTENT_TYPE,
      };
      if (remainingMs !== undefined) own[NatsHeader.timeoutMs] = String(remainingMs);
      const payload = asJson
        ? Buffer.from(json.toJson(op.requestType, delivery.payload), "utf8")
        : delivery.payload;
      delivery.signal.throwIfAborted();
      let reply: Msg;
      try {
        reply = await abortable(
          connection.request(subject, payload, {
            timeout: remainingMs ?? NO_DEADLINE_TIMEOUT_MS,
            headers: toNatsHeaders(delivery.metadata, own),
          }),
          delivery.signal,
        );
      } catch (error) {
        throw requestFailure(error, target.name, subject);
      }
      const metadata = metadataOf(reply.headers);
      const passed = replyHeaders(metadata);
      const fault = faultOf(metadata, passed);
      if (fault !== undefined) throw fault;
      if (reply.data.byteLength > options.maxPayloadBytes) {
        throw new BridgeError(
          Code.RESOURCE_EXHAUSTED,
          Reason.PROCESS_FAULT,
          `process ${target.name} replied with ${reply.data.byteLength} bytes, over the limit of ${options.maxPayloadBytes}`,
        );
      }
      const body = isJson(metadata)
        ? json.toBinary(op.responseType, Buffer.from(reply.data).toString("utf8"))
        : reply.data;
      return { payload: body, headers: passed, trailers: {} };
    },
    stream(delivery: StreamDelivery): AsyncIterable<ProcessStreamEvent> {
      return streamFromProcess(options, { name: target.name, prefix, asJson }, json, delivery);
    },
    async close() {
      // The connection belongs to the runtime, which closes it after every user.
    },
  };
}

/**
 * Reply headers a caller may see: not NATS's own, not the fault headers, not sb-* (S13,
 * S15), and only what every inbound transport can carry (gRPC's key and value rules): a
 * NATS header may hold any UTF-8, which an HTTP/2 caller could not be sent.
 */
function replyHeaders(metadata: Record<string, string[]>): Record<string, readonly string[]> {
  const out: Record<string, readonly string[]> = {};
  for (const [key, values] of Object.entries(metadata)) {
    if (isNatsTransportField(key) || isBridgeOwned(key)) continue;
    if (!HEADER_NAME.test(key)) continue;
    const binary = key.endsWith("-bin");
    const kept = values.filter(
      (v) => v.length <= MAX_METADATA_VALUE_BYTES && (binary ? BASE64.test(v) : ASCII_VALUE.test(v)),
    );
    if (kept.length > 0) out[key] = kept;
  }
  return out;
}

/** gRPC's key and value rules, which every inbound transport can carry. */
const HEADER_NAME = /^[0-9a-z_.-]+$/;
const MAX_METADATA_VALUE_BYTES = 8192;
const ASCII_VALUE = /^[\x20-\x7e]*$/;
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/** NATS client failures in the fault model (S14): no responders and closed connections are retryable. */
function requestFailure(error: unknown, name: string, subject: string): BridgeError {
  if (error instanceof BridgeError) return error;
  if (error instanceof errors.NoRespondersError || isNoResponders(error)) {
    return new BridgeError(
      Code.UNAVAILABLE,
      Reason.PROCESS_UNAVAILABLE,
      `process ${name}: no responders on ${subject}`,
      { cause: error },
    );
  }
  if (error instanceof errors.TimeoutError || isTimeout(error)) {
    return new BridgeError(
      Code.DEADLINE_EXCEEDED,
      Reason.DEADLINE_EXCEEDED,
      `process ${name} did not answer in time`,
      {
        cause: error,
      },
    );
  }
  if (error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError")) {
    return BridgeError.from(error);
  }
  return new BridgeError(
    Code.UNAVAILABLE,
    Reason.PROCESS_UNAVAILABLE,
    `process ${name}: ${error instanceof Error ? error.message : String(error)}`,
    { cause: error },
  );
}

/** nats.js wraps the cause of a failed request in a RequestError. */
function isNoResponders(error: unknown): boolean {
  return error instanceof Error && error.cause instanceof errors.NoRespondersError;
}

function isTimeout(error: unknown): boolean {
  return error instanceof Error && error.cause instanceof errors.TimeoutError;
}

/** Rejects when `signal` aborts; the request's own timer ends it on the NATS side. */
function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) {
    promise.catch(() => undefined);
    return Promise.reject(signal.reason);
  }
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason);
    signal.addEventListener("abort", onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener("abort", onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener("abort", onAbort);
        reject(error);
      },
    );
  });
}

/**
 * A server stream from a process at `nats://` (docs/nats.md "Streaming"): the one request
 * message goes out as a request with the session headers and the remaining deadline
 * (S1, S15); head, msgs and end come back on the bridge's reply subject, acked a half
 * window at a time, so the process sends no faster than the caller takes (robustness).
 * The end's fault comes back with its exact code, reason and details (S14). Streams of
 * requests are not carried.
 */
async function* streamFromProcess(
  options: NatsTransportOptions,
  target: { readonly name: string; readonly prefix: string; readonly asJson: boolean },
  json: JsonCodec,
  delivery: StreamDelivery,
): AsyncGenerator<ProcessStreamEvent> {
  const op = delivery.operation;
  if (op.requestStream) {
    throw new BridgeError(
      Code.UNIMPLEMENTED,
      Reason.UNSUPPORTED_ON_STREAM,
      `process ${target.name}: ${op.path} takes a stream of requests; nats:// processes serve unary, one-way and server-streaming operations`,
    );
  }
  let request: Uint8Array | undefined;
  for await (const message of delivery.messages) {
    request = message;
    break;
  }
  if (request === undefined) {
    throw new BridgeError(Code.INVALID_ARGUMENT, Reason.MALFORMED_MESSAGE, `${op.path}: no request message`);
  }
  const subject = `${target.prefix}.${op.name}`;
  const remainingMs =
    delivery.deadlineMs === undefined ? undefined : Math.max(1, Math.ceil(delivery.deadlineMs - Date.now()));
  const own: Record<string, string> = {
    ...deliveryHeaders(delivery),
    [NatsHeader.contentType]: target.asJson ? JSON_CONTENT_TYPE : PROTO_CONTENT_TYPE,
  };
  if (remainingMs !== undefined) own[NatsHeader.timeoutMs] = String(remainingMs);
  const payload = target.asJson ? Buffer.from(json.toJson(op.requestType, request), "utf8") : request;
  delivery.signal.throwIfAborted();
  let headersSent = false;
  for await (const frame of requestStream(options.connection, subject, payload, {
    headers: toNatsHeaders(delivery.metadata, own),
    window: DEFAULT_STREAM_WINDOW,
    timeoutMs: remainingMs ?? NO_DEADLINE_TIMEOUT_MS,
    signal: delivery.signal,
    maxPayloadBytes: options.maxPayloadBytes,
    noResponders: () =>
      new BridgeError(
        Code.UNAVAILABLE,
        Reason.PROCESS_UNAVAILABLE,
        `process ${target.name}: no responders on ${subject}`,
      ),
    timedOut: () =>
      new BridgeError(
        Code.DEADLINE_EXCEEDED,
        Reason.DEADLINE_EXCEEDED,
        `process ${target.name} did not end its stream in time`,
      ),
  })) {
    if (frame.kind === "head") continue;
    const metadata = metadataOf(frame.msg.headers);
    const passed = replyHeaders(metadata);
    if (frame.kind === "end") {
      const fault = faultOf(metadata, {});
      if (fault !== undefined) {
        // What the end carries beside the fault is the process's trailers (S14, S15).
        throw new BridgeError(fault.code, fault.reason, fault.message, {
          metadata: fault.metadata,
          details: fault.details,
          fromProcess: fault.fromProcess,
          ...(headersSent ? {} : { headers: passed }),
          trailers: passed,
        });
      }
      // A plain reply that is no fault is not a stream: a process that does not stream.
      if (streamKindOf(frame.msg.headers) === undefined) {
        throw new BridgeError(
          Code.INTERNAL,
          Reason.PROCESS_FAULT,
          `process ${target.name} answered ${op.path} with a single reply, not a stream (docs/nats.md)`,
        );
      }
      yield { type: "trailers", metadata: passed };
      return;
    }
    if (!headersSent) {
      headersSent = true;
      yield { type: "headers", metadata: passed };
    }
    const body = isJson(metadata)
      ? json.toBinary(op.responseType, Buffer.from(frame.msg.data).toString("utf8"))
      : frame.msg.data;
    yield { type: "message", payload: body };
  }
  throw new BridgeError(
    Code.UNAVAILABLE,
    Reason.PROCESS_UNAVAILABLE,
    `process ${target.name}: the stream on ${subject} ended without its end message`,
  );
}
