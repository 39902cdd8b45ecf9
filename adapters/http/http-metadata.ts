import type { IncomingHttpHeaders, OutgoingHttpHeaders } from "node:http";
import { isBridgeOwned, type Metadata } from "../../bridge/call/metadata.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";

/**
 * Which HTTP request headers become call metadata (S15), the documented rule
 * (docs/http.md): every header does, under its lower-case name, except
 *   - hop-by-hop and transport headers (Connection, Host, TE, Content-Length, …);
 *   - the headers of the HTTP and Connect protocols themselves: `connect-*`, `content-*`,
 *     `accept*`, `grpc-*`, `cookie`, `origin`, `referer`, `sec-*`, `cache-control`,
 *     `pragma`, `priority`, `x-user-agent`, `x-grpc-web`: they describe this hop.
 * `Sb-Session-Id`, `Sb-Seq`, `Idempotency-Key` and `traceparent` are the session headers
 * (S1, S7, S8, S15); the engine reads them and never passes client sb-* on (S13).
 * Keys ending in `-bin` carry base64, as in gRPC and the Connect protocol.
 */
export function requestMetadata(headers: IncomingHttpHeaders): Metadata {
  const out: Record<string, readonly string[]> = {};
  for (const key of Object.keys(headers)) {
    if (key.charCodeAt(0) === 58 /* ":" */ || isProtocolHeader(key)) continue;
    const value = headers[key];
    if (value === undefined) continue;
    out[key] = typeof value === "string" ? [value] : value;
  }
  return out;
}

const PROTOCOL_PREFIXES = ["connect-", "content-", "accept", "grpc-", "sec-"];
const PROTOCOL_HEADERS: ReadonlySet<string> = new Set([
  "cookie",
  "origin",
  "referer",
  "cache-control",
  "pragma",
  "priority",
  "x-user-agent",
  "x-grpc-web",
  "user-agent",
  "te",
  "host",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "http2-settings",
  "proxy-connection",
  "trailer",
]);

/** HTTP's and Connect's own fields, hop-by-hop included: this adapter strips them at its edge both ways (S15). */
export function isProtocolHeader(key: string): boolean {
  return PROTOCOL_HEADERS.has(key) || PROTOCOL_PREFIXES.some((p) => key.startsWith(p));
}

/**
 * Response metadata from a process as HTTP headers: hop-by-hop and sb-* never cross
 * (S13, S15); the bridge's own facts in `own` win. `prefix` is "trailer-" for the
 * Connect unary form of trailers.
 */
export function putResponseMetadata(headers: OutgoingHttpHeaders, metadata: Metadata, prefix = ""): void {
  for (const key of Object.keys(metadata)) {
    if (isBridgeOwned(key) || isProtocolHeader(key)) continue;
    const values = metadata[key] ?? [];
    if (values.length === 0 || !HEADER_NAME.test(key)) continue;
    const valid = values.filter((v) => FIELD_VALUE.test(v));
    if (valid.length === 0) continue;
    headers[`${prefix}${key}`] = valid.length === 1 ? valid[0] : [...valid];
  }
}

/** RFC 9110 token characters, lower case (metadata keys are lower case). */
const HEADER_NAME = /^[0-9a-z!#$%&'*+.^_`|~-]+$/;
/** Visible ASCII, space and tab: what every HTTP version and proxy carries. */
const FIELD_VALUE = /^[\t\x20-\x7e]*$/;

/** Largest Connect-Timeout-Ms: at most 10 digits (connectrpc.com/docs/protocol). */
const TIMEOUT_MS = /^\d{1,10}$/;

/**
 * Connect-Timeout-Ms as an absolute deadline from `now` (S15); undefined when absent. A
 * malformed value is INVALID_ARGUMENT: a caller who set a deadline must not lose it.
 */
export function parseConnectTimeout(value: string | undefined, now: number): number | undefined {
  if (value === undefined) return undefined;
  if (!TIMEOUT_MS.test(value)) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_REQUEST,
      `connect-timeout-ms must be a non-negative integer of at most 10 digits, got ${JSON.stringify(value.slice(0, 32))}`,
    );
  }
  return now + Number(value);
}

/** The first value of a request header. */
export function headerValue(headers: IncomingHttpHeaders, key: string): string | undefined {
  const value = headers[key];
  return Array.isArray(value) ? value[0] : value;
}

/** "application/json; charset=utf-8" → "application/json". */
export function mediaType(contentType: string | undefined): string {
  return (contentType ?? "").split(";")[0]?.trim().toLowerCase() ?? "";
}
