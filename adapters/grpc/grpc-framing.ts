/**
 * gRPC's length-prefixed messages (PROTOCOL-HTTP2.md, "Length-Prefixed-Message"): a
 * 1-byte compressed flag, a 4-byte big-endian length, then the message. HTTP/2 cuts the
 * byte stream into DATA chunks anywhere, so a message may span chunks and one chunk may
 * hold several messages.
 */
export const PREFIX_BYTES = 5;

/** At or below this size a message is copied behind its prefix into one buffer (one DATA write). */
const COPY_LIMIT_BYTES = 16 * 1024;

/**
 * The message as the chunks to write: one buffer for small messages, otherwise the
 * prefix and the message itself, so a large payload is never copied. `compressed` sets
 * the flag: the bytes are already in the call's grpc-encoding.
 */
export function frameMessage(message: Uint8Array, compressed = false): Buffer[] {
  const length = message.byteLength;
  const flag = compressed ? 1 : 0;
  if (length <= COPY_LIMIT_BYTES) {
    const frame = Buffer.allocUnsafe(PREFIX_BYTES + length);
    frame[0] = flag;
    frame.writeUInt32BE(length, 1);
    frame.set(message, PREFIX_BYTES);
    return [frame];
  }
  const prefix = Buffer.allocUnsafe(PREFIX_BYTES);
  prefix[0] = flag;
  prefix.writeUInt32BE(length, 1);
  return [prefix, asBuffer(message)];
}

/** A view of the same bytes as a Buffer (no copy). */
export function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Receives each complete message: its compressed flag (0 or 1 when valid) and its bytes. */
export type MessageSink = (flag: number, message: Buffer) => void;

/** Thrown by MessageDecoder.push for a prefix that announces more than the limit. */
export class MessageTooLargeError extends Error {
  readonly announcedBytes: number;
  readonly limitBytes: number;

  constructor(announcedBytes: number, limitBytes: number) {
    super(`a message of ${announcedBytes} bytes exceeds the limit of ${limitBytes}`);
    this.name = "MessageTooLargeError";
    this.announcedBytes = announcedBytes;
    this.limitBytes = limitBytes;
  }
}

/**
 * Reassembles messages from DATA chunks. A message that lies whole inside one chunk is
 * handed on as a view of that chunk (no copy); one split across chunks is copied once
 * into a buffer of its announced length.
 *
 * The announced length is checked against `maxMessageBytes` before anything is
 * allocated: the prefix is the sender's word, and a 5-byte prefix announcing 2 GiB must
 * not cost 2 GiB. Past such a prefix the decoder is broken and ignores further input.
 */
export class MessageDecoder {
  readonly #maxMessageBytes: number;
  #broken = false;
  /** Holds a prefix split across chunks (rare), allocated when first needed. */
  #prefix: Buffer | undefined;
  #flag = 0;
  /** Bytes of the prefix read so far (0 to 5); 5 while a message body is being filled. */
  #prefixFill = 0;
  #body: Buffer | undefined;
  #bodyFill = 0;

  constructor(maxMessageBytes: number) {
    this.#maxMessageBytes = maxMessageBytes;
  }

  /** True when the bytes seen so far end inside a message. */
  get partial(): boolean {
    return this.#prefixFill > 0;
  }

  /** Throws MessageTooLargeError for a message over the limit; ignores input from then on. */
  push(chunk: Buffer, sink: MessageSink): void {
    if (this.#broken) return;
    let pos = 0;
    const end = chunk.length;
    while (pos < end) {
      if (this.#prefixFill === 0 && end - pos >= PREFIX_BYTES) {
        // The common case: a whole prefix at hand.
        const flag = chunk[pos] as number;
        const length = this.#checked(chunk.readUInt32BE(pos + 1));
        pos += PREFIX_BYTES;
        if (end - pos >= length) {
          sink(flag, chunk.subarray(pos, pos + length));
          pos += length;
          continue;
        }
        this.#flag = flag;
        this.#prefixFill = PREFIX_BYTES;
        this.#startBody(length);
      } else if (this.#prefixFill < PREFIX_BYTES) {
        this.#prefix ??= Buffer.alloc(PREFIX_BYTES);
        const prefix = this.#prefix;
        const take = Math.min(PREFIX_BYTES - this.#prefixFill, end - pos);
        chunk.copy(prefix, this.#prefixFill, pos, pos + take);
        this.#prefixFill += take;
        pos += take;
        if (this.#prefixFill < PREFIX_BYTES) return;
        this.#flag = prefix[0] as number;
        this.#startBody(this.#checked(prefix.readUInt32BE(1)));
      }
      const body = this.#body as Buffer;
      const take = Math.min(body.length - this.#bodyFill, end - pos);
      chunk.copy(body, this.#bodyFill, pos, pos + take);
      this.#bodyFill += take;
      pos += take;
      if (this.#bodyFill === body.length) {
        this.#body = undefined;
        this.#bodyFill = 0;
        this.#prefixFill = 0;
        sink(this.#flag, body);
      }
    }
  }

  #checked(length: number): number {
    if (length > this.#maxMessageBytes) {
      this.#broken = true;
      throw new MessageTooLargeError(length, this.#maxMessageBytes);
    }
    return length;
  }

  #startBody(length: number): void {
    this.#body = Buffer.allocUnsafe(length);
    this.#bodyFill = 0;
  }
}
