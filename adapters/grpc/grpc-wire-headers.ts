import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http2";
import type { Metadata } from "../../bridge/call/metadata.js";
import { isBridgeOwned } from "../../bridge/call/metadata.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";

/**
 * gRPC-over-HTTP/2 header fields (PROTOCOL-HTTP2.md): the request's, and the response's
 * headers and trailers back into the internal Metadata form.
 */

/**
 * Custom metadata and the delivery's sb-* headers as HTTP/2 header fields; the delivery
 * headers win over metadata of the same name. "-bin" values are held as base64 text;
 * they are re-encoded unpadded, as the spec asks senders to do (receivers, grpc-js
 * included, accept both). Names and text values are checked first: Node answers a
 * malformed header name by destroying the whole session, every call on it included.
 */
export function putMetadata(
  headers: OutgoingHttpHeaders,
  metadata: Metadata,
  extra: Readonly<Record<string, string>>,
): void {
  // for…in rather than Object.keys(): no key array per call on the hot path (DESIGN §6);
  // metadata and extra are plain records, so own keys are all there is.
  for (const key in metadata) {
    // Transport-owned fields are this hop's to set (S15), never the caller's.
    if (Object.hasOwn(extra, key) || isBridgeOwned(key) || GRPC_TRANSPORT_FIELDS.has(key)) continue;
    const values = metadata[key] as readonly string[];
    if (values.length === 0) continue;
    checkName(key);
    if (key.endsWith("-bin")) {
      headers[key] = values.length === 1 ? unpaddedBase64(values[0] as string) : values.map(unpaddedBase64);
    } else {
      for (const value of values) checkText(key, value);
      headers[key] = values.length === 1 ? values[0] : [...values];
    }
  }
  for (const key in extra) {
    const value = extra[key] as string;
    checkText(key, value);
    headers[key] = value;
  }
}

/** gRPC's Header-Name: lower-case letters, digits, "-", "_" and ".". */
const HEADER_NAME = /^[0-9a-z_.-]+$/;
/** gRPC's ASCII-Value: printable ASCII and space. */
const ASCII_VALUE = /^[\x20-\x7e]*$/;

function checkName(key: string): void {
  if (!HEADER_NAME.test(key)) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_REQUEST,
      `metadata key ${JSON.stringify(key)} is not a valid gRPC header name`,
    );
  }
}

function checkText(key: string, value: string): void {
  if (!ASCII_VALUE.test(value)) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_REQUEST,
      `metadata ${key} has a value that is not printable ASCII; binary values go under a key ending in -bin`,
    );
  }
}

function unpaddedBase64(text: string): string {
  return Buffer.from(text, "base64").toString("base64").replace(/=+$/, "");
}

/** Largest value grpc-timeout may carry: at most 8 digits. */
const MAX_TIMEOUT_VALUE = 99_999_999;

/**
 * The remaining time as grpc-timeout (S15): whole milliseconds while they fit in 8
 * digits, else the smallest coarser unit that does, rounded up so the process never
 * sees less time than the caller gave.
 */
export function grpcTimeout(remainingMs: number): string {
  const ms = Math.max(0, Math.ceil(remainingMs));
  if (ms <= MAX_TIMEOUT_VALUE) return `${ms}m`;
  const seconds = Math.ceil(ms / 1000);
  if (seconds <= MAX_TIMEOUT_VALUE) return `${seconds}S`;
  const minutes = Math.ceil(seconds / 60);
  if (minutes <= MAX_TIMEOUT_VALUE) return `${minutes}M`;
  return `${Math.min(Math.ceil(minutes / 60), MAX_TIMEOUT_VALUE)}H`;
}

/**
 * Header fields that belong to one HTTP/2 hop of gRPC, never to the call's metadata
 * (S15): HTTP's connection-specific fields (illegal in HTTP/2 anyway), the framing and
 * content fields, and gRPC's own protocol fields, which each hop sets for itself. The
 * gRPC adapter strips them at its edge in both directions; the engine never sees them.
 * (grpc-status-details-bin is read as the status where it belongs, and dropped elsewhere.)
 */
export const GRPC_TRANSPORT_FIELDS: ReadonlySet<string> = new Set([
  "connection",
  "keep-alive",
  "proxy-connection",
  "transfer-encoding",
  "upgrade",
  "te",
  "trailer",
  "host",
  "content-length",
  "content-type",
  "accept-encoding",
  "user-agent",
  "grpc-timeout",
  "grpc-encoding",
  "grpc-accept-encoding",
  "grpc-status",
  "grpc-message",
  "grpc-status-details-bin",
  "grpc-previous-rpc-attempts",
]);

/**
 * Response headers or trailers as Metadata: pseudo-headers dropped, "-bin" values as
 * (padded) base64 text, `drop` left out. Node joins repeated fields with ", ": "-bin"
 * values are split apart again (base64 has no comma), others stay joined, as grpc-js
 * reads them.
 */
export function metadataOf(
  headers: IncomingHttpHeaders,
  drop: ReadonlySet<string> = GRPC_TRANSPORT_FIELDS,
): Metadata {
  const out: Record<string, string[]> = {};
  for (const key of Object.keys(headers)) {
    if (key.charCodeAt(0) === 58 /* ":" */ || drop.has(key)) continue;
    const value = headers[key];
    if (value === undefined) continue;
    const values = typeof value === "string" ? [value] : value;
    out[key] = key.endsWith("-bin") ? values.flatMap(splitBinary) : values;
  }
  return out;
}

function splitBinary(value: string): string[] {
  return value.split(",").map((part) => Buffer.from(part.trim(), "base64").toString("base64"));
}

/**
 * grpc-message is percent-encoded UTF-8 (PROTOCOL-HTTP2.md, "Status-Message"). Malformed
 * escapes are kept as they are: a readable message beats none. Runs of escapes decode
 * together, since one character may take several bytes.
 */
export function decodeGrpcMessage(text: string): string {
  if (!text.includes("%")) return text;
  return text.replace(/(?:%[0-9A-Fa-f]{2})+/g, (run) =>
    Buffer.from(run.replaceAll("%", ""), "hex").toString("utf8"),
  );
}

/**
 * grpc-message as the spec asks senders to write it: UTF-8, with every byte outside
 * printable ASCII, and "%" itself, as %XX.
 */
export function encodeGrpcMessage(text: string): string {
  // An HTTP field value may not begin or end with whitespace (RFC 9113 §8.2.1), and HTTP/2
  // stacks drop or trim such a value: a leading or trailing space is percent-encoded too.
  if (!/[^\x20-\x24\x26-\x7e]|^ | $/.test(text)) return text;
  const bytes = Buffer.from(text, "utf8");
  let out = "";
  for (let i = 0; i < bytes.length; i++) {
    const byte = bytes[i] as number;
    const edgeSpace = byte === 0x20 && (i === 0 || i === bytes.length - 1);
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25 && !edgeSpace
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
  }
  return out;
}

/** Longest timer Node keeps (about 24.8 days); a deadline further away is no practical deadline. */
export const MAX_DEADLINE_MS = 2 ** 31 - 1;

/**
 * grpc-timeout ("1234m", at most 8 digits and a unit) as an absolute deadline from `now`,
 * in whole milliseconds (S15): rounded up, so the bridge and the process never see less
 * time than the caller gave, and never below 1 ms (grpc-go sends microseconds "u" or
 * nanoseconds "n" for short deadlines). A timeout longer than MAX_DEADLINE_MS (up to
 * 99 999 999 hours can be written) is no practical deadline: undefined, as when absent,
 * so no timer downstream is ever asked for more than it can hold. A malformed value is
 * ignored, as grpc-js servers do.
 */
export function parseGrpcTimeout(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match === null) return undefined;
  const amount = Number(match[1]);
  let ms: number;
  switch (match[2]) {
    case "H":
      ms = amount * 3_600_000;
      break;
    case "M":
      ms = amount * 60_000;
      break;
    case "S":
      ms = amount * 1000;
      break;
    case "m":
      ms = amount;
      break;
    case "u":
      ms = Math.ceil(amount / 1000);
      break;
    default:
      ms = Math.ceil(amount / 1_000_000);
  }
  if (ms > MAX_DEADLINE_MS) return undefined;
  return Math.floor(now) + Math.max(1, ms);
}
