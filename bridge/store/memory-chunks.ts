/** The smallest chunk: what a session that is opened and never called holds. */
export const FIRST_CHUNK_BYTES = 256;
/** The largest pooled chunk; a larger entry gets a chunk of exactly its size, never pooled. */
export const MAX_CHUNK_BYTES = 64 * 1024;

/**
 * The byte chunks the memory store packs journals into (memory-journal.ts), kept for reuse
 * when a journal is dropped. Sessions turn over at a steady rate: without reuse each chunk
 * is a fresh malloc'd ArrayBuffer freed whenever the GC finds it, and chunks sized by the
 * entry that opened them scattered odd sizes through malloc's heap, whose holes it kept
 * resident, while the chunks' JavaScript objects churned through V8's old space. A chunk
 * is a power of two from FIRST_CHUNK_BYTES to MAX_CHUNK_BYTES, so a dropped one fits the
 * next journal that needs one of its size.
 */
export interface ChunkPool {
  /** A chunk of exactly `bytes` (a chunk size, chunkBytesFor), a pooled one when there is one. */
  take(bytes: number): Buffer;
  /** Takes back a chunk nothing refers to any more; kept while the pool has room, else left to the GC. */
  give(chunk: Buffer): void;
  /** Bytes of the chunks kept for reuse now. */
  readonly pooledBytes: number;
  /** Chunks taken so far that were new allocations, not reused ones. */
  readonly allocatedChunks: number;
  /** Drops every pooled chunk. */
  clear(): void;
}

export interface ChunkPoolOptions {
  /**
   * At most this many bytes of unused chunks are kept (DESIGN §7: what a pool keeps is
   * bounded); what comes back past it is left to the GC.
   */
  readonly maxPooledBytes: number;
}

/**
 * The chunk size for a journal that needs room for `entryBytes` after a last chunk of
 * `lastChunkBytes` (0 for none): twice the last, at least the entry rounded up to a power
 * of two, at most MAX_CHUNK_BYTES; an entry larger than that gets its exact size.
 */
export function chunkBytesFor(entryBytes: number, lastChunkBytes: number): number {
  if (entryBytes > MAX_CHUNK_BYTES) return entryBytes;
  let bytes = lastChunkBytes === 0 ? FIRST_CHUNK_BYTES : Math.min(MAX_CHUNK_BYTES, lastChunkBytes * 2);
  while (bytes < entryBytes) bytes *= 2;
  return bytes;
}

/** Pool slot of a pooled chunk size (FIRST_CHUNK_BYTES × 2^slot), or -1 for a size that is not pooled. */
function slotOf(bytes: number): number {
  if (bytes < FIRST_CHUNK_BYTES || bytes > MAX_CHUNK_BYTES) return -1;
  const slot = Math.log2(bytes / FIRST_CHUNK_BYTES);
  return Number.isInteger(slot) ? slot : -1;
}

export function createChunkPool(options: ChunkPoolOptions): ChunkPool {
  const free: Buffer[][] = [];
  for (let bytes = FIRST_CHUNK_BYTES; bytes <= MAX_CHUNK_BYTES; bytes *= 2) free.push([]);
  let pooledBytes = 0;
  let allocatedChunks = 0;
  return {
    take(bytes) {
      const reused = free[slotOf(bytes)]?.pop();
      if (reused !== undefined) {
        pooledBytes -= reused.length;
        return reused;
      }
      allocatedChunks += 1;
      return Buffer.allocUnsafeSlow(bytes);
    },
    give(chunk) {
      const list = free[slotOf(chunk.length)];
      // A chunk that is a view on a larger buffer is not one this pool handed out.
      if (list === undefined || chunk.byteOffset !== 0 || chunk.buffer.byteLength !== chunk.length) return;
      if (pooledBytes + chunk.length > options.maxPooledBytes) return;
      list.push(chunk);
      pooledBytes += chunk.length;
    },
    get pooledBytes() {
      return pooledBytes;
    },
    get allocatedChunks() {
      return allocatedChunks;
    },
    clear() {
      for (const list of free) list.length = 0;
      pooledBytes = 0;
    },
  };
}
