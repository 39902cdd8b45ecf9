import zlib from "node:zlib";
import { setWireForm, wireFormOf } from "../../bridge/call/wire-form.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { frameMessage } from "./grpc-framing.js";

/**
 * Message compression of gRPC (doc/compression.md): the encodings the bridge can read,
 * and reading one with a bound on what it may inflate to.
 */

/** The encodings the bridge decompresses, besides identity. */
export const COMPRESSIONS: readonly string[] = ["gzip", "deflate"];

/** grpc-accept-encoding as the bridge advertises it: exactly what it can read. */
export const ACCEPT_ENCODING = ["identity", ...COMPRESSIONS].join(",");

/** True when the bridge can read messages compressed with `encoding`. */
export function canDecompress(encoding: string | undefined): encoding is string {
  return encoding !== undefined && COMPRESSIONS.includes(encoding);
}

const NO_ENCODINGS: ReadonlySet<string> = new Set();
/** The last header parsed and its set: a client sends the same one on every call. */
let lastHeader: string | undefined;
let lastEncodings: ReadonlySet<string> = NO_ENCODINGS;

/**
 * The encodings a grpc-accept-encoding header lists (a comma-separated list). Parsed once
 * per distinct header value in a row: every call of a connection carries the same one,
 * and the sets are only read, so they can be shared (DESIGN §6, hot path).
 */
export function acceptedEncodings(header: string | string[] | undefined): ReadonlySet<string> {
  if (header === undefined) return NO_ENCODINGS;
  const text = typeof header === "string" ? header : header.join(",");
  if (text === lastHeader) return lastEncodings;
  const encodings: ReadonlySet<string> = new Set(
    text
      .split(",")
      .map((name) => name.trim())
      .filter((name) => name !== "" && name !== "identity"),
  );
  lastHeader = text;
  lastEncodings = encodings;
  return encodings;
}

/**
 * The message framed for a hop whose grpc-encoding is `encoding`: still compressed, in
 * the very bytes it arrived in, when it arrived in that encoding (bridge/call/wire-form.ts
 * says why); otherwise as plain bytes, which every peer reads.
 */
export function framePassing(message: Uint8Array, encoding: string | undefined): Buffer[] {
  if (encoding !== undefined) {
    const form = wireFormOf(message);
    if (form !== undefined && form.encoding === encoding) return frameMessage(form.compressed, true);
  }
  return frameMessage(message);
}

/**
 * The message inflated as `decompress` does, its compressed bytes recorded beside it so
 * the next hop can send them on unchanged (bridge/call/wire-form.ts).
 */
export function decompressKeepingForm(
  encoding: string | undefined,
  compressed: Uint8Array,
  maxBytes: number,
  reason: string,
): Buffer {
  const message = decompress(encoding, compressed, maxBytes, reason);
  setWireForm(message, { encoding: encoding as string, compressed });
  return message;
}

/**
 * The message inflated, never to more than `maxBytes`: zlib stops there, so a small
 * message that inflates to gigabytes (a "zip bomb") costs at most the limit, and fails
 * with RESOURCE_EXHAUSTED as an oversized plain message would. Bytes that are not valid
 * in the encoding fail with `corruptCode` (a client's are INTERNAL to gRPC servers, a
 * process's likewise). `reason` names the side at fault.
 */
export function decompress(
  encoding: string | undefined,
  compressed: Uint8Array,
  maxBytes: number,
  reason: string,
  corruptCode: Code = Code.INTERNAL,
): Buffer {
  const options = { maxOutputLength: Math.max(1, maxBytes) };
  try {
    if (encoding === "gzip") return zlib.gunzipSync(compressed, options);
    if (encoding === "deflate") return zlib.inflateSync(compressed, options);
  } catch (error) {
    if ((error as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new BridgeError(
        Code.RESOURCE_EXHAUSTED,
        reason,
        `a ${encoding} message inflates to more than the limit of ${maxBytes} bytes`,
        { cause: error },
      );
    }
    throw new BridgeError(
      corruptCode,
      reason,
      `cannot decompress a ${encoding} message: ${(error as Error).message}`,
      { cause: error },
    );
  }
  // A message flagged compressed in a stream that names no compression breaks the
  // protocol (INTERNAL); one in an encoding the bridge cannot read is UNIMPLEMENTED, as the
  // gRPC compression spec says.
  throw new BridgeError(
    encoding === undefined || encoding === "identity" ? Code.INTERNAL : Code.UNIMPLEMENTED,
    reason,
    `compressed message with grpc-encoding ${encoding ?? "identity"}; accepted: ${ACCEPT_ENCODING}`,
  );
}
