import { gunzip } from "node:zlib";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { HttpRequest } from "./http-server.js";

/**
 * A request body read whole, never more than `maxBytes`: a declared Content-Length over
 * the limit is refused before a byte is read, a body that grows past it is refused at the
 * chunk that crosses it (RESOURCE_EXHAUSTED, HTTP 429). The caller answers and closes the
 * connection, so the rest is never read (DESIGN §7: lengths checked before allocation).
 */
export async function readBody(request: HttpRequest, maxBytes: number): Promise<Buffer> {
  const declared = request.headers["content-length"];
  if (declared !== undefined && Number(declared) > maxBytes) throw tooLarge(Number(declared), maxBytes);
  return new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const cleanup = (): void => {
      request.off("data", onData);
      request.off("end", onEnd);
      request.off("error", onError);
      request.off("aborted", onAborted);
    };
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > maxBytes) {
        cleanup();
        request.pause();
        reject(tooLarge(size, maxBytes));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      cleanup();
      resolve(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks, size));
    };
    const onError = (error: Error): void => {
      cleanup();
      reject(
        new BridgeError(Code.CANCELLED, Reason.CANCELLED, `the request body broke off: ${error.message}`),
      );
    };
    const onAborted = (): void => onError(new Error("aborted"));
    request.on("data", onData);
    request.on("end", onEnd);
    request.on("error", onError);
    request.on("aborted", onAborted);
  });
}

/** Decodes a gzip body, refusing output past `maxBytes` (no decompression bombs). */
export function gunzipBounded(body: Buffer, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    gunzip(body, { maxOutputLength: maxBytes }, (error, result) => {
      if (error === null) resolve(result);
      else if ((error as NodeJS.ErrnoException).code === "ERR_BUFFER_TOO_LARGE")
        reject(tooLarge(maxBytes + 1, maxBytes));
      else
        reject(
          new BridgeError(
            Code.INVALID_ARGUMENT,
            Reason.INVALID_REQUEST,
            `the gzip body is corrupt: ${error.message}`,
          ),
        );
    });
  });
}

function tooLarge(size: number, limit: number): BridgeError {
  return new BridgeError(
    Code.RESOURCE_EXHAUSTED,
    Reason.INVALID_REQUEST,
    `request body of ${size} bytes or more exceeds the limit of ${limit}`,
    { metadata: { max_bytes: String(limit) } },
  );
}
