import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";

/**
 * Transport-neutral metadata: lower-case keys, each with its values in order. Values of
 * keys ending in "-bin" are base64 text (as gRPC-over-HTTP and the Connect protocol
 * carry them), so every adapter can hold them in the same form.
 */
export type Metadata = Readonly<Record<string, readonly string[]>>;

/** Keys the bridge owns (S13): whatever a client sends under them is never trusted. */
export const SB_PREFIX = "sb-";

export const Header = {
  sessionId: "sb-session-id",
  seq: "sb-seq",
  messageId: "sb-message-id",
  principal: "sb-principal",
  idempotencyKey: "idempotency-key",
  traceparent: "traceparent",
  tracestate: "tracestate",
} as const;

/**
 * True for keys the bridge owns (S13: client-sent sb-* is never trusted) and HTTP/2
 * pseudo-headers. Transport fields (HTTP hop-by-hop, gRPC's protocol headers, …) are not
 * known here: each adapter strips its own at its edge (DESIGN §7).
 */
export function isBridgeOwned(key: string): boolean {
  return key.startsWith(SB_PREFIX) || key.startsWith(":");
}

/** The metadata minus sb-* and the bridge's control headers: what may travel on (S13, S15). */
export function forwardable(metadata: Metadata, drop: ReadonlySet<string> = CONTROL_KEYS): Metadata {
  const out: Record<string, readonly string[]> = {};
  for (const [key, values] of Object.entries(metadata)) {
    if (isBridgeOwned(key) || drop.has(key)) continue;
    out[key] = values;
  }
  return out;
}

/** Headers the bridge consumes itself; traceparent is re-emitted by the bridge on every hop. */
const CONTROL_KEYS: ReadonlySet<string> = new Set([Header.traceparent, Header.tracestate]);

/** The first value under `key`, if any. */
export function firstValue(metadata: Metadata, key: string): string | undefined {
  return metadata[key]?.[0];
}

/** Values joined the way HTTP joins repeated fields, for the journal's map<string,string>. */
export function flattenMetadata(metadata: Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, values] of Object.entries(metadata)) out[key] = values.join(", ");
  return out;
}

/** gRPC's Header-Name, the strictest of the transports: lower-case letters, digits, "-", "_", ".". */
const HEADER_NAME = /^[0-9a-z_.-]+$/;
/** gRPC's ASCII-Value: printable ASCII and space. */
const ASCII_VALUE = /^[\x20-\x7e]*$/;
/** Standard or URL-safe base64, padded or not. */
const BASE64 = /^[A-Za-z0-9+/_-]*={0,2}$/;

/**
 * Checks metadata that will travel on to a process, at admission: a message the bridge
 * acknowledges must be deliverable on every outbound transport, so a key or value that
 * one of them cannot carry is refused now with INVALID_ARGUMENT naming the key, never
 * acknowledged and lost later (S9, S15).
 */
export function checkForwardable(metadata: Metadata): void {
  for (const key of Object.keys(metadata)) {
    if (!HEADER_NAME.test(key)) {
      throw invalidMetadata(key, "is not a valid metadata key (lower-case letters, digits, '-', '_', '.')");
    }
    const binary = key.endsWith("-bin");
    for (const value of metadata[key] ?? []) {
      if (binary ? !BASE64.test(value) : !ASCII_VALUE.test(value)) {
        throw invalidMetadata(
          key,
          binary
            ? "has a value that is not base64"
            : "has a value that is not printable ASCII; binary values go under a key ending in -bin",
        );
      }
    }
  }
}

function invalidMetadata(key: string, problem: string): BridgeError {
  return new BridgeError(
    Code.INVALID_ARGUMENT,
    Reason.INVALID_METADATA,
    `metadata ${JSON.stringify(key.slice(0, 64))} ${problem}`,
    { metadata: { key: key.slice(0, 64) } },
  );
}
