/**
 * Resolves when a grpc-js stream can take more writes, or when it will never be written
 * again (cancelled, closed), so a writer waiting on backpressure is never left hanging.
 */
export function waitDrain(stream: NodeJS.EventEmitter): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      stream.off("drain", done);
      stream.off("cancelled", done);
      stream.off("close", done);
      resolve();
    };
    stream.once("drain", done);
    stream.once("cancelled", done);
    stream.once("close", done);
  });
}
