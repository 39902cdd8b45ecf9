import { expect } from "chai";
import {
  chunkBytesFor,
  createChunkPool,
  FIRST_CHUNK_BYTES,
  MAX_CHUNK_BYTES,
} from "../../../bridge/store/memory-chunks.js";
import { createMemoryJournal } from "../../../bridge/store/memory-journal.js";
import { createMemoryStore } from "../../../bridge/store/memory-store.js";
import type { JournalRecord } from "../../../bridge/store/records.js";
import { ended, entry, session } from "./store-records.js";

/** A session's life as the soak drives it: an Open, calls with their outcomes, an End; 1 KiB envelopes. */
function life(sessionId: string, calls: number, fill: number): JournalRecord[] {
  const entries: JournalRecord[] = [entry(sessionId, 1, { envelope: new Uint8Array(60).fill(fill) })];
  for (let call = 0; call < calls; call++) {
    const request = entries.length + 1;
    entries.push(
      entry(sessionId, request, { seq: call + 1, envelope: new Uint8Array(1100).fill(fill) }),
      entry(sessionId, request + 1, {
        kind: 2,
        inReplyTo: `${sessionId}-m${request}`,
        envelope: new Uint8Array(1050).fill(fill ^ 0xff),
      }),
    );
  }
  entries.push(entry(sessionId, entries.length + 1, { envelope: new Uint8Array(40).fill(fill) }));
  return entries;
}

describe("memory journal chunks", () => {
  it("sizes chunks in powers of two, doubling, at least the entry, an oversized entry exactly", () => {
    expect(chunkBytesFor(100, 0)).to.equal(FIRST_CHUNK_BYTES);
    expect(chunkBytesFor(100, 256)).to.equal(512);
    // The entry that does not fit the doubled chunk rounds the chunk up, not to its own odd size.
    expect(chunkBytesFor(1100, 512)).to.equal(2048);
    expect(chunkBytesFor(1100, 0)).to.equal(2048);
    expect(chunkBytesFor(10, MAX_CHUNK_BYTES)).to.equal(MAX_CHUNK_BYTES);
    expect(chunkBytesFor(MAX_CHUNK_BYTES, 256)).to.equal(MAX_CHUNK_BYTES);
    expect(chunkBytesFor(MAX_CHUNK_BYTES + 1, 256)).to.equal(MAX_CHUNK_BYTES + 1);
  });

  it("reuses a dropped journal's chunks for the next one, which reads back only its own entries", () => {
    const pool = createChunkPool({ maxPooledBytes: 1024 * 1024 });
    const first = createMemoryJournal("s1", pool);
    for (const e of life("s1", 8, 0x11)) first.add(e);
    const allocated = pool.allocatedChunks;
    expect(allocated).to.be.greaterThan(1);
    first.release();
    expect(first.lastIndex()).to.equal(0);
    expect(first.read(1, 100)).to.deep.equal([]);
    expect(pool.pooledBytes).to.be.greaterThan(8 * 2 * 1000);

    // Sessions that turn over with the same shape allocate nothing new.
    for (let turn = 0; turn < 20; turn++) {
      const id = `t${turn}`;
      const entries = life(id, 8, turn);
      const next = createMemoryJournal(id, pool);
      for (const e of entries) next.add(e);
      expect(next.read(1, 100)).to.deep.equal(entries);
      const request = entries[1] as JournalRecord;
      expect(next.findBySeq(1)).to.deep.equal({ request, outcomes: [entries[2]] });
      next.release();
    }
    expect(pool.allocatedChunks).to.equal(allocated);
  });

  it("keeps no more than its bound of unused chunks, and never an oversized one", () => {
    const maxPooledBytes = 16 * 1024;
    const pool = createChunkPool({ maxPooledBytes });
    const journals = Array.from({ length: 10 }, (_, i) => {
      const journal = createMemoryJournal(`s${i}`, pool);
      for (const e of life(`s${i}`, 8, i)) journal.add(e);
      return journal;
    });
    for (const journal of journals) {
      journal.release();
      expect(pool.pooledBytes).to.be.at.most(maxPooledBytes);
    }
    expect(pool.pooledBytes).to.be.greaterThan(0);

    const big = createChunkPool({ maxPooledBytes: 1024 * 1024 });
    const journal = createMemoryJournal("big", big);
    const large = entry("big", 1, { envelope: new Uint8Array(MAX_CHUNK_BYTES + 10).fill(7) });
    journal.add(large);
    expect(journal.read(1, 1)).to.deep.equal([large]);
    journal.release();
    expect(big.pooledBytes).to.equal(0);
    big.give(Buffer.alloc(1000));
    big.give(Buffer.alloc(4096).subarray(0, 1024));
    expect(big.pooledBytes).to.equal(0);
  });
});

describe("memory store chunk reuse", () => {
  it("gives purged sessions' chunks to new sessions without touching live ones, accounting exactly", async () => {
    const store = createMemoryStore();
    try {
      const live = life("live", 8, 0x5a);
      await store.commit({ sessions: [session("live")], entries: live.slice(0, 5) });
      const emptyBytes = store.sizes().bytes;
      for (let round = 0; round < 5; round++) {
        const ids = Array.from({ length: 20 }, (_, i) => `r${round}-${i}`);
        const lives = ids.map((id, i) => life(id, 8, round * 20 + i));
        await store.commit({ sessions: ids.map((id) => session(id)), entries: lives.flat() });
        for (const [i, id] of ids.entries()) {
          expect(await store.readJournal(id, 1, 100)).to.deep.equal(lives[i]);
        }
        await store.commit({ sessions: ids.map((id) => ended(session(id), 100)) });
        expect(await store.purge(200, 0)).to.deep.include({ sessions: 20 });
        // The purged sessions' bytes are all given back: only the live one is held.
        expect(store.sizes().bytes).to.equal(emptyBytes);
        for (const id of ids) expect(await store.readJournal(id, 1, 100)).to.deep.equal([]);
      }
      // The live session's journal kept its own bytes through the reuse around it, and grows on.
      await store.commit({ entries: live.slice(5) });
      expect(await store.readJournal("live", 1, 100)).to.deep.equal(live);
    } finally {
      await store.close();
    }
  });
});
