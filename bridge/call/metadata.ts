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
 * Hop-by-hop and transport-owned headers (S15): they describe one connection and never
 * cross the bridge. Includes HTTP/1.1 hop-by-hop headers, HTTP/2 pseudo-headers'
 * neighbours, and gRPC's own protocol headers, which each hop sets for itself.
 */
const HOP_BY_HOP = new Set([
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

/** True for keys that must not be forwarded to the next hop. */
export function isHopByHop(key: string): boolean {
  return HOP_BY_HOP.has(key) || key.startsWith(":") || key.startsWith(SB_PREFIX);
}

/** The metadata minus hop-by-hop, sb-* and the bridge's control headers. */
export function forwardable(metadata: Metadata, drop: ReadonlySet<string> = CONTROL_KEYS): Metadata {
  const out: Record<string, readonly string[]> = {};
  for (const [key, values] of Object.entries(metadata)) {
    if (isHopByHop(key) || drop.has(key)) continue;
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
