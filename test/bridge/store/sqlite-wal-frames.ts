import { closeSync, openSync, readSync } from "node:fs";

/**
 * Frames in a database's WAL now: mxFrame of the WAL index header at the start of the
 * -shm file (offset 16, native byte order, little-endian on the machines we run on). It
 * grows by every frame a commit appends and starts again when the WAL is reused after a
 * checkpoint.
 */
export function walFrames(path: string): number {
  const header = Buffer.alloc(20);
  const fd = openSync(`${path}-shm`, "r");
  try {
    return readSync(fd, header, 0, 20, 0) === 20 ? header.readUInt32LE(16) : 0;
  } finally {
    closeSync(fd);
  }
}
