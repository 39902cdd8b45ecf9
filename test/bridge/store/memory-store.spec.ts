import { expect } from "chai";
import { DEFAULT_MAX_MEMORY_BYTES } from "../../../bridge/config/config.js";
import { createStore } from "../../../bridge/store/create-store.js";
import { createMemoryStore } from "../../../bridge/store/memory-store.js";
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
      expect(store.sizes()).to.deep.equal({
        sessions: 51,
        journals: 51,
        outboxSessions: 51,
        idempotency: 51,
        liveKeys: 51,
        followers: 0,
      });
      await store.commit({ sessions: ids.map((id) => ended(keyed(id), 100)) });
      const controller = new AbortController();
      const follower = store.followJournal("s0", 3, controller.signal)[Symbol.asyncIterator]();
      const waiting = follower.next();
      expect(store.sizes().followers).to.equal(1);

      expect(await store.purge(200, 500)).to.deep.equal({ sessions: 50, idempotency: 50 });
      controller.abort();
      expect(await waiting).to.deep.equal({ done: true, value: undefined });
      expect(store.sizes()).to.deep.equal({
        sessions: 1,
        journals: 1,
        outboxSessions: 1,
        idempotency: 1,
        liveKeys: 1,
        followers: 0,
      });
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
