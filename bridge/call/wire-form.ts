/**
 * The compressed form a message travelled in, kept beside its decompressed bytes.
 *
 * A gRPC proxy must not change what the two ends negotiated: a message a client
 * compressed should reach a process that reads that encoding still compressed, and a
 * compressed reply should reach a client that accepts it the same way. The engine works
 * on the decompressed bytes (correlation reads fields, the journal records the payload)
 * and passes payload objects through unchanged, from the inbound adapter's call to the
 * outbound's delivery and back. So the adapter that decompressed a message records its
 * wire form here, keyed by the very Uint8Array it hands on, and the adapter on the other
 * side looks it up: no engine type or transport detail changes (DESIGN §7, the engine
 * never learns the transport). A WeakMap, so an entry lives exactly as long as its
 * payload; a payload the engine copied or rebuilt has no entry and travels uncompressed.
 */
export interface WireForm {
  /** The grpc-encoding the bytes are in ("gzip", "deflate"). */
  readonly encoding: string;
  /** The message as it was on the wire, compressed. */
  readonly compressed: Uint8Array;
}

const forms = new WeakMap<Uint8Array, WireForm>();

/** Records that `message` arrived compressed as `form`. */
export function setWireForm(message: Uint8Array, form: WireForm): void {
  forms.set(message, form);
}

/** The compressed form `message` arrived in, if it arrived compressed. */
export function wireFormOf(message: Uint8Array): WireForm | undefined {
  return forms.get(message);
}

const streamEncodings = new WeakMap<object, string>();

/**
 * Records the grpc-encoding a stream of request messages arrived with, keyed by the
 * iterable the inbound adapter hands on: an outbound stream declares its encoding before
 * its first message exists, and a stream passed through unchanged can then declare the
 * client's.
 */
export function setStreamEncoding(messages: object, encoding: string): void {
  streamEncodings.set(messages, encoding);
}

/** The grpc-encoding the stream `messages` arrived with, if it was recorded. */
export function streamEncodingOf(messages: object): string | undefined {
  return streamEncodings.get(messages);
}
