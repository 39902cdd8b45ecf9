import zlib from "node:zlib";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";

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
  throw new BridgeError(
    Code.UNIMPLEMENTED,
    reason,
    `compressed message with grpc-encoding ${encoding ?? "identity"}; accepted: ${ACCEPT_ENCODING}`,
  );
}
