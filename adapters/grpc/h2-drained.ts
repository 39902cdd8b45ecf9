import type http2 from "node:http2";

/**
 * Resolves when an HTTP/2 stream takes writes again, or will never take any (closed), so
 * a writer waiting on backpressure is never left hanging.
 */
export function drained(stream: http2.Http2Stream): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off("drain", done);
      stream.off("close", done);
      resolve();
    };
    stream.once("drain", done);
    stream.once("close", done);
  });
}
