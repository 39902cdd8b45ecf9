import { expect } from "chai";
import { DEFAULT_MAX_MEMORY_BYTES } from "../../../bridge/config/config.js";
import { EnvelopeKind, encodeEnvelope, makeEnvelope } from "../../../bridge/engine/envelope-codec.js";
import { BridgeError } from "../../../bridge/errors/bridge-error.js";
import { Code } from "../../../bridge/errors/code.js";
import { Reason } from "../../../bridge/errors/reason.js";
import { createStore } from "../../../bridge/store/create-store.js";
import { createMemoryStore } from "../../../bridge/store/memory-store.js";
import type { JournalRecord } from "../../../bridge/store/records.js";
import { expectBridgeError } from "./expect-bridge-error.js";
import { ended, entry, idempotency, outbox, session } from "./store-records.js";

describe("memory store retention", () => {
  it("keeps nothing of what it purged: sessions, journals, outbox, keys, idempotency records", async () => {
    const store = createMemoryStore();
    try {
      const keyed = (id: string) =>
        session(id, { correlationSet: "byOrder", correlation: { orderId: id }, correlationKey: id });
      const ids = Array.from({ length: 50 }, (_, i) => `s${i}`);
      await store.commit({
        sessions: [...ids.map(keyed), keyed("live")],
        entries: [...ids, "live"].flatMap((id) => [entry(id, 1), entry(id, 2)]),
        outboxAdd: [...ids, "live"].map((id) => outbox(id, 2)),
        idempotency: [
          ...ids.map((id) => idempotency("alice", id, { sessionId: id, createdAtMs: 10 })),
          idempotency("alice", "recent", { createdAtMs: 1_000 }),
        ],
      });
      const { bytes, endedBytes, ...held } = store.sizes();
      expect(held).to.deep.equal({
        sessions: 51,
        journals: 51,
        outboxSessions: 51,
        idempotency: 51,
        liveKeys: 51,
        followers: 0,
      });
      expect(endedBytes).to.equal(0);
      await store.commit({ sessions: ids.map((id) => ended(keyed(id), 100)) });
      const controller = new AbortController();
      const follower = store.followJournal("s0", 3, controller.signal)[Symbol.asyncIterator]();
      const waiting = follower.next();
      expect(store.sizes().followers).to.equal(1);

      expect(await store.purge(200, 500)).to.deep.equal({ sessions: 50, idempotency: 50 });
      controller.abort();
      expect(await waiting).to.deep.equal({ done: true, value: undefined });
      const after = store.sizes();
      expect({ ...after, bytes: undefined, endedBytes: undefined }).to.deep.equal({
        sessions: 1,
        journals: 1,
        outboxSessions: 1,
        idempotency: 1,
        liveKeys: 1,
        followers: 0,
        bytes: undefined,
        endedBytes: undefined,
      });
      // What is left is what one live session and one idempotency record hold.
      expect(after.bytes).to.be.within(1, bytes / 40);
      expect(after.endedBytes).to.equal(0);
      expect(await store.findSessionByCorrelation("shop.v1.Orders", "live")).to.deep.equal(keyed("live"));
    } finally {
      await store.close();
    }
  });

  it("is what createStore builds for a memory config, with the same retention", async () => {
    const store = await createStore({ kind: "memory", maxMemoryBytes: DEFAULT_MAX_MEMORY_BYTES });
    try {
      await store.commit({ sessions: [ended(session("s1"), 100)], entries: [entry("s1", 1)] });
      expect(await store.purge(101, 0)).to.deep.equal({ sessions: 1, idempotency: 0 });
      expect(await store.readJournal("s1", 1, 10)).to.deep.equal([]);
    } finally {
      await store.close();
    }
  });
});

describe("memory store budget (storeOptions.maxMemoryBytes)", () => {
  const payload = (bytes: number) => new Uint8Array(bytes).fill(0x5a);
  /** A request of `bytes` payload bytes at `index` of session `id`. */
  const request = (id: string, index: number, bytes = 1024) => entry(id, index, { envelope: payload(bytes) });
  const outcome = (id: string, index: number, answers: number, bytes = 1024) =>
    entry(id, index, { kind: 2, inReplyTo: `${id}-m${answers}`, envelope: payload(bytes) });

  it("refuses a commit that would go over it with RESOURCE_EXHAUSTED (STORE_FULL), keeping nothing of it", async () => {
    const store = createMemoryStore({ maxMemoryBytes: 64 * 1024 });
    try {
      await store.commit({ sessions: [session("s1")], entries: [request("s1", 1)] });
      let index = 2;
      let refused: unknown;
      // DESIGN §7: however long one client sends to one session, the store stops taking more.
      for (; index < 1000 && refused === undefined; index++) {
        await store.commit({ sessions: [session("s1")], entries: [request("s1", index)] }).catch((error) => {
          refused = error;
        });
      }
      expect(index).to.be.below(1000);
      const before = store.sizes();
      expect(before.bytes).to.be.at.most(64 * 1024);
      const last = index - 1;
      const error = await expectBridgeError(
        store.commit({
          sessions: [session("s1", { nextSeq: 9 })],
          entries: [request("s1", last)],
          idempotency: [idempotency("alice", "k1")],
          outboxAdd: [outbox("s1", last)],
        }),
        Code.RESOURCE_EXHAUSTED,
        Reason.STORE_FULL,
      );
      expect(error.metadata.limit_bytes).to.equal(String(64 * 1024 - 8 * 1024));
      // Nothing of the refused batch is held (S9: it can never be acknowledged).
      expect(store.sizes()).to.deep.equal(before);
      expect(await store.readJournal("s1", last, 10)).to.deep.equal([]);
      expect((await store.getSession("s1"))?.nextSeq).to.equal(1);
      expect(await store.getIdempotency("alice", "k1")).to.equal(undefined);
      expect((await store.recover()).outbox).to.deep.equal([]);
      // Another session cannot start either: the bound is the store's, not one session's.
      await expectBridgeError(
        store.commit({ sessions: [session("s2")], entries: [entry("s2", 1)] }),
        Code.RESOURCE_EXHAUSTED,
        Reason.STORE_FULL,
      );
      expect(await store.getSession("s2")).to.equal(undefined);
    } finally {
      await store.close();
    }
  });

  it("keeps the last eighth for outcomes and session ends of work already admitted", async () => {
    const store = createMemoryStore({ maxMemoryBytes: 64 * 1024 });
    try {
      await store.commit({ sessions: [session("s1")], entries: [request("s1", 1)] });
      let index = 2;
      for (;;) {
        const admitted = await store.commit({ entries: [request("s1", index)] }).then(
          () => true,
          () => false,
        );
        if (!admitted) break;
        index++;
      }
      // The last request admitted is answered, and the session ends, past the admission limit.
      await store.commit({ sessions: [session("s1")], entries: [outcome("s1", index, index - 1)] });
      await store.commit({
        sessions: [ended(session("s1"), 3_000)],
        entries: [entry("s1", index + 1, { kind: 5 })],
      });
      const recorded = await store.findByMessageId("s1", `s1-m${index - 1}`);
      expect(recorded?.outcomes.map((o) => o.index)).to.deep.equal([index]);
      expect((await store.getSession("s1"))?.state).to.equal("closed");
    } finally {
      await store.close();
    }
  });

  it("admits a request for an end operation, and its idempotency key, in the reserved eighth (S12)", async () => {
    const END = "/shop.v1.Orders/Close";
    const store = createMemoryStore({ maxMemoryBytes: 64 * 1024, endOperations: new Set([END]) });
    /** A request whose envelope names `operation`, as the engine encodes it. */
    const call = (id: string, index: number, operation: string, bytes: number) =>
      entry(id, index, {
        envelope: encodeEnvelope(
          makeEnvelope({
            kind: EnvelopeKind.ENVELOPE_KIND_REQUEST,
            messageId: `${id}-m${index}`,
            sessionId: id,
            operation,
            principal: "alice",
            timeMs: 2_000,
            payload: payload(bytes),
          }),
        ),
      });
    try {
      await store.commit({ sessions: [session("s1")], entries: [request("s1", 1)] });
      let index = 2;
      while (
        await store.commit({ entries: [request("s1", index)] }).then(
          () => true,
          () => false,
        )
      )
        index++;
      // New work is refused past seven eighths, whatever its operation…
      await expectBridgeError(
        store.commit({ entries: [call("s1", index, "/shop.v1.Orders/Place", 100)] }),
        Code.RESOURCE_EXHAUSTED,
        Reason.STORE_FULL,
      );
      // …and an end request too when even the whole budget cannot hold it.
      const huge = await expectBridgeError(
        store.commit({ entries: [call("s1", index, END, 16 * 1024)] }),
        Code.RESOURCE_EXHAUSTED,
        Reason.STORE_FULL,
      );
      expect(huge.metadata.limit_bytes).to.equal(String(64 * 1024));
      // An end request that fits the whole budget is admitted, with a new key for it.
      await store.commit({
        sessions: [session("s1")],
        entries: [call("s1", index, END, 100)],
        idempotency: [idempotency("alice", "close-once", { operation: END, sessionId: "s1" })],
        outboxAdd: [outbox("s1", index)],
      });
      expect(store.sizes().bytes).to.be.above(64 * 1024 - 8 * 1024);
      expect(await store.readJournal("s1", index, 1)).to.have.length(1);
      expect((await store.getIdempotency("alice", "close-once"))?.operation).to.equal(END);
      // A new key for another operation is new work and is still refused.
      await expectBridgeError(
        store.commit({ idempotency: [idempotency("alice", "place-once")] }),
        Code.RESOURCE_EXHAUSTED,
        Reason.STORE_FULL,
      );
    } finally {
      await store.close();
    }
  });

  it("gives back the room of ended sessions, the first ended first, when a commit needs it", async () => {
    const store = createMemoryStore({ maxMemoryBytes: 64 * 1024 });
    try {
      const tenRequests = (id: string) => [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((i) => request(id, i));
      // Sessions of ten 1 KiB requests each, until the store takes no more.
      const ids: string[] = [];
      for (;;) {
        const id = `s${ids.length}`;
        const kept = await store
          .commit({
            sessions: [session(id)],
            entries: [1, 2, 3, 4, 5, 6, 7, 8, 9, 10].map((i) => request(id, i)),
          })
          .then(
            () => true,
            () => false,
          );
        if (!kept) break;
        ids.push(id);
      }
      expect(ids.length).to.be.within(3, 6);
      await expectBridgeError(
        store.commit({ sessions: [session("e")], entries: tenRequests("e") }),
        Code.RESOURCE_EXHAUSTED,
        Reason.STORE_FULL,
      );
      await store.commit({ sessions: [ended(session("s1"), 3_000)] });
      await store.commit({ sessions: [ended(session("s0"), 3_100)] });
      expect(store.sizes().endedBytes).to.be.above(20 * 1024);
      // Retention keeps ended sessions while there is room…
      expect((await store.getSession("s1"))?.state).to.equal("closed");
      expect(await store.readJournal("s1", 1, 20)).to.have.length(10);
      // The same as a session that ended, or smaller (a shorter id).
      await store.commit({ sessions: [session("e")], entries: tenRequests("e") });
      // …and the session that ended first made room for the new one; the other is still held.
      expect(await store.getSession("s1")).to.equal(undefined);
      expect(await store.readJournal("s1", 1, 20)).to.deep.equal([]);
      expect((await store.getSession("s0"))?.state).to.equal("closed");
      expect(await store.readJournal("s0", 1, 20)).to.have.length(10);
      expect(await store.readJournal("e", 1, 20)).to.have.length(10);
    } finally {
      await store.close();
    }
  });

  it("accounts back to zero once every session ended and the records are purged", async () => {
    const store = createMemoryStore({ maxMemoryBytes: 1024 * 1024 });
    try {
      const keyed = (id: string) =>
        session(id, { correlationSet: "byOrder", correlation: { orderId: id }, correlationKey: id });
      const ids = Array.from({ length: 20 }, (_, i) => `s${i}`);
      for (const id of ids) {
        await store.commit({ sessions: [keyed(id)], entries: [request(id, 1)], outboxAdd: [outbox(id, 1)] });
        await store.commit({
          sessions: [keyed(id)],
          entries: [outcome(id, 2, 1)],
          outboxRemove: [outbox(id, 1)],
          idempotency: [idempotency("alice", id, { outcome: payload(100), createdAtMs: 10 })],
        });
      }
      expect(store.sizes().bytes).to.be.above(20 * 2 * 1024);
      await store.commit({ sessions: ids.map((id) => ended(keyed(id), 100)) });
      const sizes = store.sizes();
      expect(sizes.endedBytes).to.be.above(20 * 2 * 1024);
      await store.purge(200, 0);
      const purgedSessions = store.sizes();
      expect(purgedSessions.endedBytes).to.equal(0);
      expect(purgedSessions.bytes).to.equal(sizes.bytes - sizes.endedBytes);
      await store.purge(200, 500);
      expect(store.sizes()).to.deep.include({ bytes: 0, endedBytes: 0, sessions: 0, idempotency: 0 });
    } finally {
      await store.close();
    }
  });

  it("takes room back from purged idempotency records (S8 retention)", async () => {
    const store = createMemoryStore({ maxMemoryBytes: 32 * 1024 });
    try {
      let key = 0;
      for (;;) {
        const record = idempotency("alice", `k${key}`, { outcome: payload(1024), createdAtMs: 10 });
        const kept = await store.commit({ idempotency: [record] }).then(
          () => true,
          () => false,
        );
        if (!kept) break;
        key++;
      }
      expect(key).to.be.above(10);
      await expectBridgeError(
        store.commit({ sessions: [session("s1")], entries: [request("s1", 1)] }),
        Code.RESOURCE_EXHAUSTED,
        Reason.STORE_FULL,
      );
      await store.purge(0, 11);
      expect(store.sizes().bytes).to.equal(0);
      await store.commit({ sessions: [session("s1")], entries: [request("s1", 1)] });
    } finally {
      await store.close();
    }
  });

  it("refuses a budget that is not a positive integer", () => {
    for (const maxMemoryBytes of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => createMemoryStore({ maxMemoryBytes }))
        .to.throw(BridgeError)
        .that.deep.includes({ code: Code.INVALID_ARGUMENT, reason: Reason.INVALID_CONFIG });
    }
  });
});

describe("memory store journal bytes", () => {
  it("hands back every entry as committed: large envelopes, non-ASCII ids, numbers past 32 bits", async () => {
    const store = createMemoryStore();
    try {
      const entries = Array.from({ length: 300 }, (_, i) =>
        entry("s1", i + 1, {
          messageId: i % 7 === 0 ? `é-${i}-ü` : `m${i}`,
          inReplyTo: i % 2 === 1 ? (i % 7 === 1 ? `é-${i - 1}-ü` : `m${i - 1}`) : "",
          kind: i % 2 === 0 ? 1 : 2,
          seq: i % 2 === 0 ? 2 ** 40 + i : 0,
          recordedAtMs: 1_700_000_000_000 + i,
          // Some larger than a chunk, most small, one empty.
          envelope:
            i === 5 ? new Uint8Array(0) : new Uint8Array(i % 50 === 3 ? 100_000 : 40 + i).fill(i & 0xff),
        }),
      );
      for (let at = 0; at < entries.length; at += 25) {
        await store.commit({ sessions: [session("s1")], entries: entries.slice(at, at + 25) });
      }
      expect(await store.readJournal("s1", 1, 1000)).to.deep.equal(entries);
      expect(await store.readJournal("s1", 150, 3)).to.deep.equal(entries.slice(149, 152));
      const request = entries[14] as JournalRecord;
      expect(await store.findByMessageId("s1", request.messageId)).to.deep.equal({
        request,
        outcomes: [entries[15]],
      });
      expect(await store.findBySeq("s1", request.seq)).to.deep.equal({ request, outcomes: [entries[15]] });
      // An outcome is not found by its own id.
      expect(await store.findByMessageId("s1", (entries[15] as JournalRecord).messageId)).to.equal(undefined);
      // What a read hands out is a copy: changing it changes nothing held.
      const [first] = await store.readJournal("s1", 1, 1);
      first?.envelope.fill(0);
      expect((await store.readJournal("s1", 1, 1))[0]).to.deep.equal(entries[0]);
    } finally {
      await store.close();
    }
  });
});
