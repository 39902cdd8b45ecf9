/**
 * Hand-written protobuf and gRPC framing for the two bench messages. The load generator
 * builds requests with this instead of a protobuf library so that its own CPU cost per
 * request stays small next to what it measures.
 *
 *   EchoRequest { string key = 1; bytes payload = 2; }
 *   EchoReply   { bytes payload = 1; }
 */

const KEY_TAG = 0x0a; // field 1, length-delimited
const PAYLOAD_TAG = 0x12; // field 2, length-delimited
/** gRPC message prefix: 1 byte compressed flag, 4 bytes big-endian length. */
export const FRAME_HEADER_BYTES = 5;

function varintLength(value: number): number {
  let n = 1;
  while (value >= 0x80) {
    value >>>= 7;
    n += 1;
  }
  return n;
}

function writeVarint(buf: Buffer, pos: number, value: number): number {
  while (value >= 0x80) {
    buf[pos++] = (value & 0x7f) | 0x80;
    value >>>= 7;
  }
  buf[pos++] = value;
  return pos;
}

/** One gRPC length-prefixed EchoRequest; an empty payload is left out, as proto3 does. */
export function requestFrame(key: string, payload: Uint8Array): Buffer {
  const keyBytes = Buffer.byteLength(key);
  let size = 1 + varintLength(keyBytes) + keyBytes;
  if (payload.length > 0) size += 1 + varintLength(payload.length) + payload.length;
  const buf = Buffer.allocUnsafe(FRAME_HEADER_BYTES + size);
  buf[0] = 0;
  buf.writeUInt32BE(size, 1);
  let pos = FRAME_HEADER_BYTES;
  buf[pos++] = KEY_TAG;
  pos = writeVarint(buf, pos, keyBytes);
  pos += buf.write(key, pos, "utf8");
  if (payload.length > 0) {
    buf[pos++] = PAYLOAD_TAG;
    pos = writeVarint(buf, pos, payload.length);
    buf.set(payload, pos);
  }
  return buf;
}

/** Byte length of the framed EchoReply that echoes `payloadBytes` bytes. */
export function replyFrameLength(payloadBytes: number): number {
  const message = payloadBytes === 0 ? 0 : 1 + varintLength(payloadBytes) + payloadBytes;
  return FRAME_HEADER_BYTES + message;
}
