import { type ChunkPool, chunkBytesFor, MAX_CHUNK_BYTES } from "./memory-chunks.js";
import { copyBytes } from "./record-copy.js";
import type { JournalRecord } from "./records.js";
import type { RecordedExchange } from "./session-store.js";

/**
 * One session's journal in memory (S9), with the lookups the SQLite indexes give: by
 * index, by sb-seq (S7), by message id and by the request an outcome answers.
 */
export interface MemoryJournal {
  /** The highest index held, 0 when empty. */
  lastIndex(): number;
  /** Adds an entry; the caller has checked that it continues the journal (checkJournalAppend). */
  add(entry: JournalRecord): void;
  read(fromIndex: number, limit: number): JournalRecord[];
  findBySeq(seq: number): RecordedExchange | undefined;
  findByMessageId(messageId: string): RecordedExchange | undefined;
  /**
   * Gives the journal's chunks back to its pool when the store drops it; the journal is
   * empty afterwards, so no later call can read or write a chunk another journal now holds.
   */
  release(): void;
}

/** Bytes an entry takes packed: its header, its two ids and its envelope (see packEntry). */
export function packedEntryBytes(entry: JournalRecord): number {
  return (
    HEADER_BYTES +
    Buffer.byteLength(entry.messageId) +
    Buffer.byteLength(entry.inReplyTo) +
    entry.envelope.byteLength
  );
}

// An entry packed: sb-seq and time (float64 each: any safe integer), kind and the envelope's
// length (uint32 each), the byte lengths of the message id and of the id it answers (uint16
// each: ids are short, MAX_ID_BYTES), then those ids (UTF-8) and the encoded envelope. Its
// index is its position in the journal.
const SEQ_AT = 0;
const TIME_AT = 8;
const KIND_AT = 16;
const ENVELOPE_LENGTH_AT = 20;
const MESSAGE_ID_LENGTH_AT = 24;
const IN_REPLY_TO_LENGTH_AT = 26;
const HEADER_BYTES = 28;
const MAX_ID_BYTES = 0xffff;

/**
 * Entries are kept as bytes, not objects: a journal is append-only and read rarely (history,
 * the recorded outcome of an S7/S8 duplicate, recovery), so each entry is packed into the
 * session's chunks, which grow by doubling to 64 KiB (memory-chunks.ts), and decoded when
 * read. The chunks come from the store's pool and go back to it when the session is
 * dropped, so sessions that turn over reuse the same memory. What an entry
 * costs beyond its bytes is one number for its position and one map entry for its id: the
 * journal holds no per-entry object, string or ArrayBuffer (DESIGN §6: memory per call).
 *
 * Appends are contiguous (checkJournalAppend), so the entry with index i is the i-th one
 * held. Requests and outcomes are found through a 32-bit hash of the message id they carry
 * (a request its own, an outcome the one it answers); the ids themselves are compared on
 * the packed bytes, so a collision costs a comparison, never a wrong answer.
 */
export function createMemoryJournal(sessionId: string, pool: ChunkPool): MemoryJournal {
  const chunks: Buffer[] = [];
  /** Free bytes at the end of the last chunk. */
  let free = 0;
  /** Where each entry starts, in index order: chunk number × MAX_CHUNK_BYTES + offset. */
  const places: number[] = [];
  let firstIndex = 1;
  // Each lookup keeps the lowest index, as SQLite's ORDER BY idx LIMIT 1 does.
  const bySeq = new Map<number, number>();
  /** Hash of a message id → the indexes of the entries that carry it, ascending. */
  const byId = new Map<number, number | number[]>();

  const bytesOf = (index: number): Buffer => {
    const place = places[index - firstIndex] as number;
    const chunk = chunks[Math.floor(place / MAX_CHUNK_BYTES)] as Buffer;
    return chunk.subarray(place % MAX_CHUNK_BYTES);
  };

  const candidates = (messageId: string): readonly number[] => {
    const held = byId.get(hashId(messageId));
    return held === undefined ? [] : typeof held === "number" ? [held] : held;
  };

  const exchange = (requestIndex: number, messageId: string): RecordedExchange => {
    const outcomes: JournalRecord[] = [];
    if (messageId !== "") {
      for (const index of candidates(messageId)) {
        const bytes = bytesOf(index);
        if (inReplyToOf(bytes) === messageId) outcomes.push(unpackEntry(bytes, sessionId, index));
      }
    }
    return { request: unpackEntry(bytesOf(requestIndex), sessionId, requestIndex), outcomes };
  };

  return {
    lastIndex: () => (places.length === 0 ? 0 : firstIndex + places.length - 1),

    add(entry) {
      if (places.length === 0) firstIndex = entry.index;
      const size = packedEntryBytes(entry);
      if (size > free) {
        // An entry larger than MAX_CHUNK_BYTES gets a chunk of its own, exactly its size, at
        // offset 0, so every place's offset stays below MAX_CHUNK_BYTES.
        const chunk = pool.take(chunkBytesFor(size, chunks[chunks.length - 1]?.length ?? 0));
        chunks.push(chunk);
        free = chunk.length;
      }
      const chunkNumber = chunks.length - 1;
      const chunk = chunks[chunkNumber] as Buffer;
      const offset = chunk.length - free;
      packEntry(entry, chunk, offset);
      free -= size;
      places.push(chunkNumber * MAX_CHUNK_BYTES + offset);
      if (entry.seq > 0 && !bySeq.has(entry.seq)) bySeq.set(entry.seq, entry.index);
      // A request is found by its own id, an outcome by the id of the request it answers.
      const hash = hashId(entry.inReplyTo === "" ? entry.messageId : entry.inReplyTo);
      const held = byId.get(hash);
      if (held === undefined) byId.set(hash, entry.index);
      else if (typeof held === "number") byId.set(hash, [held, entry.index]);
      else held.push(entry.index);
    },

    read(fromIndex, limit) {
      const out: JournalRecord[] = [];
      const end = firstIndex + places.length;
      for (
        let index = Math.max(Math.ceil(fromIndex), firstIndex);
        index < end && out.length < limit;
        index++
      ) {
        out.push(unpackEntry(bytesOf(index), sessionId, index));
      }
      return out;
    },

    findBySeq(seq) {
      const index = seq > 0 ? bySeq.get(seq) : undefined;
      return index === undefined ? undefined : exchange(index, messageIdOf(bytesOf(index)));
    },

    findByMessageId(messageId) {
      for (const index of candidates(messageId)) {
        const bytes = bytesOf(index);
        // Only requests (entries that answer none) are found by their own message id.
        if (inReplyToOf(bytes) === "" && messageIdOf(bytes) === messageId) return exchange(index, messageId);
      }
      return undefined;
    },

    release() {
      for (const chunk of chunks) pool.give(chunk);
      chunks.length = 0;
      free = 0;
      places.length = 0;
      bySeq.clear();
      byId.clear();
    },
  };
}

function packEntry(entry: JournalRecord, into: Buffer, at: number): void {
  const messageIdBytes = Buffer.byteLength(entry.messageId);
  const inReplyToBytes = Buffer.byteLength(entry.inReplyTo);
  if (messageIdBytes > MAX_ID_BYTES || inReplyToBytes > MAX_ID_BYTES) {
    // The engine's ids are 22 characters; anything near this is not an id.
    throw new RangeError(`journal ids must be at most ${MAX_ID_BYTES} bytes`);
  }
  into.writeDoubleLE(entry.seq, at + SEQ_AT);
  into.writeDoubleLE(entry.recordedAtMs, at + TIME_AT);
  into.writeUInt32LE(entry.kind, at + KIND_AT);
  into.writeUInt32LE(entry.envelope.byteLength, at + ENVELOPE_LENGTH_AT);
  into.writeUInt16LE(messageIdBytes, at + MESSAGE_ID_LENGTH_AT);
  into.writeUInt16LE(inReplyToBytes, at + IN_REPLY_TO_LENGTH_AT);
  let offset = at + HEADER_BYTES;
  offset += into.write(entry.messageId, offset, "utf8");
  offset += into.write(entry.inReplyTo, offset, "utf8");
  into.set(entry.envelope, offset);
}

function messageIdOf(bytes: Buffer): string {
  return bytes.toString("utf8", HEADER_BYTES, HEADER_BYTES + bytes.readUInt16LE(MESSAGE_ID_LENGTH_AT));
}

function inReplyToOf(bytes: Buffer): string {
  const from = HEADER_BYTES + bytes.readUInt16LE(MESSAGE_ID_LENGTH_AT);
  return bytes.toString("utf8", from, from + bytes.readUInt16LE(IN_REPLY_TO_LENGTH_AT));
}

/** The entry packed at the start of `bytes`; its envelope is a copy, as every store read hands out. */
function unpackEntry(bytes: Buffer, sessionId: string, index: number): JournalRecord {
  const envelopeAt =
    HEADER_BYTES + bytes.readUInt16LE(MESSAGE_ID_LENGTH_AT) + bytes.readUInt16LE(IN_REPLY_TO_LENGTH_AT);
  return {
    sessionId,
    index,
    messageId: messageIdOf(bytes),
    kind: bytes.readUInt32LE(KIND_AT),
    seq: bytes.readDoubleLE(SEQ_AT),
    inReplyTo: inReplyToOf(bytes),
    recordedAtMs: bytes.readDoubleLE(TIME_AT),
    envelope: copyBytes(bytes.subarray(envelopeAt, envelopeAt + bytes.readUInt32LE(ENVELOPE_LENGTH_AT))),
  };
}

/** FNV-1a over the id's UTF-16 code units, as a small integer (a map key without a string). */
function hashId(id: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < id.length; i++) {
    hash ^= id.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash | 0;
}
