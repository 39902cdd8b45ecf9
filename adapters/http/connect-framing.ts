import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";

/**
 * The enveloped messages of the Connect streaming protocol and gRPC-Web: one flags byte,
 * a 4-byte big-endian length, the message. Flag 0x01 is compression; 0x02 marks the
 * end-stream message (Connect) and 0x80 the trailers frame (gRPC-Web).
 */
export const COMPRESSED_FLAG = 0x01;
export const END_STREAM_FLAG = 0x02;

export interface Envelope {
  readonly flags: number;
  readonly data: Buffer;
}

export function frameEnvelope(flags: number, data: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(5 + data.byteLength);
  out.writeUInt8(flags, 0);
  out.writeUInt32BE(data.byteLength, 1);
  out.set(data, 5);
  return out;
}

/** Every envelope of a complete body; a truncated one or one over `maxBytes` is refused. */
export function readEnvelopes(body: Buffer, maxBytes: number): Envelope[] {
  const reader = new EnvelopeReader(maxBytes);
  const out = reader.push(body);
  reader.end();
  return out;
}

/**
 * Envelopes from a byte stream, chunk by chunk. The declared length is checked against
 * the limit before any of it is buffered (DESIGN §7).
 */
export class EnvelopeReader {
  readonly #maxBytes: number;
  #pending: Buffer[] = [];
  #size = 0;

  constructor(maxBytes: number) {
    this.#maxBytes = maxBytes;
  }

  push(chunk: Buffer): Envelope[] {
    this.#pending.push(chunk);
    this.#size += chunk.length;
    const out: Envelope[] = [];
    for (;;) {
      if (this.#size < 5) return out;
      const head = this.#peek(5);
      const length = head.readUInt32BE(1);
      if (length > this.#maxBytes) {
        throw new BridgeError(
          Code.RESOURCE_EXHAUSTED,
          Reason.INVALID_REQUEST,
          `message of ${length} bytes exceeds the limit of ${this.#maxBytes}`,
          { metadata: { max_bytes: String(this.#maxBytes) } },
        );
      }
      if (this.#size < 5 + length) return out;
      const whole = this.#take(5 + length);
      out.push({ flags: whole.readUInt8(0), data: whole.subarray(5) });
    }
  }

  /** The stream ended: leftover bytes are a truncated envelope. */
  end(): void {
    if (this.#size > 0) {
      throw new BridgeError(
        Code.INVALID_ARGUMENT,
        Reason.INVALID_REQUEST,
        `the stream ended inside an enveloped message (${this.#size} bytes left over)`,
      );
    }
  }

  #peek(n: number): Buffer {
    const first = this.#pending[0] as Buffer;
    if (first.length >= n) return first.subarray(0, n);
    this.#pending = [Buffer.concat(this.#pending, this.#size)];
    return (this.#pending[0] as Buffer).subarray(0, n);
  }

  #take(n: number): Buffer {
    const all =
      this.#pending.length === 1 ? (this.#pending[0] as Buffer) : Buffer.concat(this.#pending, this.#size);
    const taken = all.subarray(0, n);
    const rest = all.subarray(n);
    this.#pending = rest.length > 0 ? [rest] : [];
    this.#size = rest.length;
    return taken;
  }
}
