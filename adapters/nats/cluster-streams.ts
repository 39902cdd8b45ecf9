import { errors, type Msg, headers as natsHeaders } from "@nats-io/transport-node";
import type { StreamCall, StreamEvent } from "../../bridge/call/call.js";
import { Header, isBridgeOwned, type Metadata } from "../../bridge/call/metadata.js";
import type { ClusterBridge } from "../../bridge/cluster/cluster-bridge.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { ClusterForwardingOptions } from "./cluster-forwarding.js";
import {
  type CallHead,
  clusterSubject,
  forwardedCall,
  forwardFailure,
  frame,
  malformed,
  respondFault,
  unframe,
} from "./cluster-frames.js";
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

/** A forwarded stream without a deadline may last a day, as a stream to a process does. */
const NO_DEADLINE_STREAM_MS = 24 * 3600 * 1000;

/**
 * Streams between replicas (docs/nats.md "Streaming"): the request is the framed call head
 * (with `stream: true`) and its one request message; the owner answers on the reply
 * subject with head, msgs and end, the end carrying the fault exactly as the NATS adapter
 * writes it (S14). The window and acks bound what either replica holds, and the forwarding
 * replica's caller going away cancels the owner's call (sb-stream-cancel).
 */
export async function* forwardStream(
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
export async function serveForwardedStream(
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

export function isStreamRequest(msg: Msg): boolean {
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
