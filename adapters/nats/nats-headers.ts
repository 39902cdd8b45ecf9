import { type MsgHdrs, headers as natsHeaders } from "@nats-io/transport-node";
import { isBridgeOwned, type Metadata } from "../../bridge/call/metadata.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";

/**
 * The headers of the NATS adapter. Session facts use the same names as on gRPC (sb-*,
 * Idempotency-Key, traceparent); the deadline, which NATS has no field for, travels as
 * the remaining time in milliseconds under SB_TIMEOUT_MS (S15).
 */
export const NatsHeader = {
  /** Remaining time of the caller's deadline in milliseconds, a positive integer (S15). */
  timeoutMs: "sb-timeout-ms",
  contentType: "content-type",
  /**
   * The services API's error headers (DESIGN §3): the HTTP number of the code, and the
   * message. Written in this exact case, which NATS clients look up verbatim.
   */
  serviceErrorCode: "Nats-Service-Error-Code",
  serviceError: "Nats-Service-Error",
  /**
   * The exact fault (S14): a google.rpc.Status, base64, with the gRPC code, the message and
   * every detail, an ErrorInfo with the reason among them, so a round trip loses nothing.
   */
  status: "sb-status-bin",
  /** The reason alone, for people reading headers (`nats req` prints them). */
  reason: "sb-reason",
  /** JetStream's de-duplication id; the durable intake takes it as an idempotency key (S8). */
  msgId: "nats-msg-id",
} as const;

export const JSON_CONTENT_TYPE = "application/json";
export const PROTO_CONTENT_TYPE = "application/protobuf";

/** Longest deadline a caller may give: a year, far beyond any real call, so the sum stays exact. */
const MAX_TIMEOUT_MS = 365 * 24 * 3600 * 1000;
const TIMEOUT = /^[0-9]{1,12}$/;

/** A header's key as metadataOf() gives it. */
export function lowerKey(key: string): string {
  return key.toLowerCase();
}

/** NATS headers in the bridge's neutral form: lower-case keys, values in order. */
export function metadataOf(hdrs: MsgHdrs | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  if (hdrs === undefined) return out;
  for (const [key, values] of hdrs) {
    const lower = key.toLowerCase();
    const list = out[lower] ?? [];
    list.push(...values);
    out[lower] = list;
  }
  return out;
}

/**
 * Header fields that belong to one NATS hop, never to the call's metadata (S15): NATS's
 * own (Nats-*: the services API's errors, JetStream's ids and expectations) and the
 * payload's Content-Type, which each hop sets for itself. The adapter strips them at its
 * edge in both directions (DESIGN §7).
 */
export function isNatsTransportField(key: string): boolean {
  return key.startsWith("nats-") || key === NatsHeader.contentType;
}

/** What a caller's headers may forward: without this hop's own fields (S15). */
export function withoutNatsHeaders(metadata: Metadata): Record<string, readonly string[]> {
  const out: Record<string, readonly string[]> = {};
  for (const [key, values] of Object.entries(metadata)) {
    if (!isNatsTransportField(key)) out[key] = values;
  }
  return out;
}

/** The caller's deadline (S15) from SB_TIMEOUT_MS; a malformed value is INVALID_ARGUMENT. */
export function deadlineOf(metadata: Metadata, nowMs: number): number | undefined {
  const text = metadata[NatsHeader.timeoutMs]?.[0];
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!TIMEOUT.test(text) || value <= 0 || value > MAX_TIMEOUT_MS) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_REQUEST,
      `${NatsHeader.timeoutMs} must be a positive number of milliseconds up to ${MAX_TIMEOUT_MS}, got ${JSON.stringify(text.slice(0, 32))}`,
    );
  }
  return nowMs + value;
}

/** True when the Content-Type header asks for protobuf JSON. */
export function isJson(metadata: Metadata): boolean {
  const value = metadata[NatsHeader.contentType]?.[0];
  return value !== undefined && value.split(";")[0]?.trim().toLowerCase() === JSON_CONTENT_TYPE;
}

/** Builds NATS headers; metadata that must not cross this hop is left out (S15). */
export function toNatsHeaders(metadata: Metadata, own: Readonly<Record<string, string>> = {}): MsgHdrs {
  const hdrs = natsHeaders();
  for (const [key, values] of Object.entries(metadata)) {
    if (isBridgeOwned(key) || isNatsTransportField(key) || key in own) continue;
    for (const value of values) hdrs.append(key, value);
  }
  for (const [key, value] of Object.entries(own)) hdrs.set(key, value);
  return hdrs;
}
