import { setImmediate } from "node:timers/promises";
import { expect } from "chai";
import { Code } from "../../../bridge/errors/code.js";
import { Reason } from "../../../bridge/errors/reason.js";
import { FOLLOW_PAGE_SIZE } from "../../../bridge/store/journal-follow.js";
import type { JournalRecord, SessionRecord } from "../../../bridge/store/records.js";
import type { SessionQuery, SessionStore, StoreBatch } from "../../../bridge/store/session-store.js";
import { expectBridgeError } from "./expect-bridge-error.js";
import { ended, entry, idempotency, outbox, session } from "./store-records.js";

export interface OpenedStore {
  readonly store: SessionStore;
  /** Closes the store and opens the same data again, for durable stores. */
  readonly reopen?: () => Promise<SessionStore>;
  /** Journal followers the current store has registered. */
  readonly followers: () => number;
  readonly cleanup: () => Promise<void>;
}

/**
 * The behaviour every SessionStore shares. Each store runs it on a fresh, empty store per
 * test, so a store that passes can replace another without the bridge noticing.
 */
export function describeSessionStore(name: string, open: () => Promise<OpenedStore>): void {
  describe(`SessionStore contract: ${name}`, () => {
    let opened: OpenedStore;
    let store: SessionStore;

    beforeEach(async () => {
      opened = await open();
      store = opened.store;
    });

    afterEach(async () => {
      await opened.cleanup();
    });

    describe("records", () => {
      it("reads back every field of a session, set and unset", async () => {
        const full = session("s-full", {
          service: "shop.v1.Carts",
          state: "expired",
          endReason: "idle-timeout",
          correlationSet: "byCart",
          correlation: { cartId: "c-17", "customer.id": "42" },
          correlationKey: "c-17|42",
          principal: "spiffe://example.org/shop",
          createdAtMs: 1_700_000_000_123,
          lastActiveAtMs: 1_700_000_100_456,
          endedAtMs: 1_700_000_200_789,
          idleTimeoutMs: 90_000,
          maxLifetimeMs: 7_200_000,
          nextSeq: 12,
          journalLength: 33,
        });
        const bare = session("s-bare");
        await store.commit({ sessions: [full, bare] });

        expect(await store.getSession("s-full")).to.deep.equal(full);
        expect(await store.getSession("s-bare")).to.deep.equal(bare);
        expect(await store.getSession("s-missing")).to.equal(undefined);
      });

      it("replaces a session record committed again", async () => {
        const first = session("s1", { correlationKey: "k1", correlation: { id: "k1" } });
        await store.commit({ sessions: [first] });
        const later = {
          ...first,
          lastActiveAtMs: 9_000,
          nextSeq: 4,
          journalLength: 7,
          correlation: { id: "k1", x: "y" },
        };
        await store.commit({ sessions: [later] });
        expect(await store.getSession("s1")).to.deep.equal(later);
        await store.commit({ sessions: [ended(later, 10_000)] });
        expect(await store.getSession("s1")).to.deep.equal(ended(later, 10_000));
      });

      it("reads back every field of journal entries and idempotency records", async () => {
        const request = entry("s1", 1, {
          kind: 1,
          seq: 3,
          messageId: "m-req",
          recordedAtMs: 1_700_000_000_001,
        });
        const response = entry("s1", 2, {
          kind: 2,
          inReplyTo: "m-req",
          messageId: "m-res",
          envelope: new Uint8Array(2048).map((_, i) => (i * 7) & 0xff),
        });
        const empty = entry("s1", 3, { kind: 3, envelope: new Uint8Array(0) });
        const answered = idempotency("alice", "key-1", {
          sessionId: "s1",
          messageId: "m-req",
          outcome: new Uint8Array([9, 8, 7]),
          createdAtMs: 1_700_000_000_002,
        });
        const inFlight = idempotency("bob", "key-1");
        await store.commit({
          sessions: [session("s1")],
          entries: [request, response, empty],
          idempotency: [answered, inFlight],
        });

        expect(await store.readJournal("s1", 1, 10)).to.deep.equal([request, response, empty]);
        expect(await store.getIdempotency("alice", "key-1")).to.deep.equal(answered);
        expect(await store.getIdempotency("bob", "key-1")).to.deep.equal(inFlight);
        expect(await store.getIdempotency("carol", "key-1")).to.equal(undefined);
      });

      it("returns plain Uint8Arrays", async () => {
        await store.commit({
          entries: [entry("s1", 1)],
          idempotency: [idempotency("alice", "k", { outcome: new Uint8Array([1]) })],
        });
        const [read] = await store.readJournal("s1", 1, 1);
        expect(Object.getPrototypeOf(read?.envelope)).to.equal(Uint8Array.prototype);
        const record = await store.getIdempotency("alice", "k");
        expect(Object.getPrototypeOf(record?.outcome)).to.equal(Uint8Array.prototype);
      });

      it("keeps its own copies of buffers and records", async () => {
        const envelope = new Uint8Array([1, 2, 3]);
        const outcome = new Uint8Array([4, 5, 6]);
        const correlation: Record<string, string> = { id: "k" };
        const committed = store.commit({
          sessions: [session("s1", { correlation })],
          entries: [entry("s1", 1, { envelope })],
          idempotency: [idempotency("alice", "k", { outcome })],
        });
        // The caller reuses its objects before the commit has even resolved.
        envelope.fill(0);
        outcome.fill(0);
        correlation.id = "changed";
        await committed;

        const [read] = await store.readJournal("s1", 1, 1);
        expect(read?.envelope).to.deep.equal(new Uint8Array([1, 2, 3]));
        read?.envelope.fill(0);
        expect((await store.readJournal("s1", 1, 1))[0]?.envelope).to.deep.equal(new Uint8Array([1, 2, 3]));
        expect((await store.getIdempotency("alice", "k"))?.outcome).to.deep.equal(new Uint8Array([4, 5, 6]));
        expect((await store.getSession("s1"))?.correlation).to.deep.equal({ id: "k" });
      });

      it("accepts an empty batch", async () => {
        await store.commit({});
        expect(await store.recover()).to.deep.equal({ sessions: [], outbox: [] });
      });
    });

    describe("journal", () => {
      const indexes = (entries: readonly JournalRecord[]): number[] => entries.map((e) => e.index);

      beforeEach(async () => {
        // Two batches for s1, with s2's entries interleaved in the second.
        await store.commit({
          sessions: [session("s1")],
          entries: [1, 2, 3, 4, 5].map((i) => entry("s1", i)),
        });
        await store.commit({ entries: [6, 7, 8, 9, 10].map((i) => entry("s1", i)) });
        await store.commit({ entries: [entry("s2", 1), entry("s2", 2)] });
      });

      it("reads entries in index order from an index, up to a limit", async () => {
        expect(indexes(await store.readJournal("s1", 1, 100))).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        expect(indexes(await store.readJournal("s1", 0, 100))).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        expect(indexes(await store.readJournal("s1", 4, 3))).to.deep.equal([4, 5, 6]);
        expect(indexes(await store.readJournal("s1", 9, 5))).to.deep.equal([9, 10]);
        expect(await store.readJournal("s1", 11, 5)).to.deep.equal([]);
        expect(await store.readJournal("s1", 1, 0)).to.deep.equal([]);
        expect(await store.readJournal("s-none", 1, 10)).to.deep.equal([]);
        expect(indexes(await store.readJournal("s2", 1, 10))).to.deep.equal([1, 2]);
      });

      it("pages through a journal to its end", async () => {
        const seen: number[] = [];
        let from = 1;
        for (;;) {
          const page = await store.readJournal("s1", from, 3);
          if (page.length === 0) break;
          seen.push(...indexes(page));
          from = (page[page.length - 1]?.index ?? from) + 1;
        }
        expect(seen).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      });

      it("rejects a negative limit and a fractional index", async () => {
        await expectBridgeError(
          store.readJournal("s1", 1, -1),
          Code.INVALID_ARGUMENT,
          Reason.INVALID_REQUEST,
        );
        await expectBridgeError(
          store.readJournal("s1", 1.5, 10),
          Code.INVALID_ARGUMENT,
          Reason.INVALID_REQUEST,
        );
      });

      it("rejects a batch that reuses a journal index and applies none of it", async () => {
        const before = await store.getSession("s1");
        const error = await expectBridgeError(
          store.commit({
            sessions: [session("s1", { journalLength: 11 }), session("s3")],
            entries: [entry("s1", 11), entry("s1", 3, { messageId: "other" })],
            idempotency: [idempotency("alice", "k")],
            outboxAdd: [outbox("s1", 11)],
          }),
          Code.ABORTED,
          Reason.JOURNAL_CONFLICT,
        );
        expect(error.message).to.be.a("string").and.not.equal("");
        expect(error.metadata).to.deep.equal({ session_id: "s1", expected_index: "12" });
        expect(await store.getSession("s1")).to.deep.equal(before);
        expect(await store.getSession("s3")).to.equal(undefined);
        expect(indexes(await store.readJournal("s1", 1, 100))).to.deep.equal([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
        expect((await store.readJournal("s1", 3, 1))[0]?.messageId).to.equal("s1-m3");
        expect(await store.getIdempotency("alice", "k")).to.equal(undefined);
        expect((await store.recover()).outbox).to.deep.equal([]);
      });

      it("rejects a batch that repeats an index within itself", async () => {
        await expectBridgeError(
          store.commit({ entries: [entry("s9", 1), entry("s9", 1)] }),
          Code.ABORTED,
          Reason.JOURNAL_CONFLICT,
        );
        expect(await store.readJournal("s9", 1, 10)).to.deep.equal([]);
      });
    });

    describe("recorded exchanges", () => {
      const request = (index: number, seq: number): JournalRecord =>
        entry("s1", index, { seq, messageId: `req-${index}`, kind: 1 });
      const outcome = (index: number, of: number, kind = 2): JournalRecord =>
        entry("s1", index, { messageId: `out-${index}`, inReplyTo: `req-${of}`, kind });

      beforeEach(async () => {
        await store.commit({
          sessions: [session("s1")],
          // req-1 (seq 1) is never answered; req-2 (seq 2) gets one response; req-3 (unnumbered)
          // gets an ack, a fault and a response; entries of the exchanges interleave.
          entries: [request(1, 1), request(2, 2), request(3, 0), outcome(4, 2), outcome(5, 3, 5)],
        });
        await store.commit({ entries: [outcome(6, 3, 4), outcome(7, 3, 2)] });
        // Another session reusing message ids must not leak into s1's answers.
        await store.commit({
          entries: [entry("s2", 1, { seq: 2, messageId: "req-2" }), entry("s2", 2, { inReplyTo: "req-2" })],
        });
      });

      it("finds a numbered request that was never answered", async () => {
        expect(await store.findBySeq("s1", 1)).to.deep.equal({ request: request(1, 1), outcomes: [] });
        expect(await store.findByMessageId("s1", "req-1")).to.deep.equal({
          request: request(1, 1),
          outcomes: [],
        });
      });

      it("finds a request and its one outcome", async () => {
        const expected = { request: request(2, 2), outcomes: [outcome(4, 2)] };
        expect(await store.findBySeq("s1", 2)).to.deep.equal(expected);
        expect(await store.findByMessageId("s1", "req-2")).to.deep.equal(expected);
      });

      it("finds a request and all its outcomes in journal order", async () => {
        const found = await store.findByMessageId("s1", "req-3");
        expect(found).to.deep.equal({
          request: request(3, 0),
          outcomes: [outcome(5, 3, 5), outcome(6, 3, 4), outcome(7, 3, 2)],
        });
      });

      it("finds nothing for numbers and ids the session does not have", async () => {
        expect(await store.findBySeq("s1", 0), "unnumbered messages have no number").to.equal(undefined);
        expect(await store.findBySeq("s1", 3)).to.equal(undefined);
        expect(await store.findBySeq("s-none", 1)).to.equal(undefined);
        expect(await store.findByMessageId("s1", "req-9")).to.equal(undefined);
        expect(await store.findByMessageId("s-none", "req-1")).to.equal(undefined);
        expect(await store.findByMessageId("s1", "out-4"), "an outcome is not a request").to.equal(undefined);
      });

      it("keeps sessions apart", async () => {
        const found = await store.findBySeq("s2", 2);
        expect(found?.request.sessionId).to.equal("s2");
        expect(found?.outcomes.map((e) => [e.sessionId, e.index])).to.deep.equal([["s2", 2]]);
      });
    });

    describe("outbox and recovery", () => {
      it("recovers live sessions oldest first and pending one-way messages in journal order", async () => {
        await store.commit({
          sessions: [
            session("s-b", { createdAtMs: 300 }),
            session("s-a", { createdAtMs: 300 }),
            session("s-c", { createdAtMs: 100 }),
            ended(session("s-d", { createdAtMs: 50 }), 400),
          ],
          outboxAdd: [outbox("s-b", 7), outbox("s-a", 9), outbox("s-b", 2), outbox("s-a", 3)],
        });
        await store.commit({
          outboxAdd: [outbox("s-a", 5), outbox("s-c", 1)],
          outboxRemove: [outbox("s-b", 2)],
        });

        const recovered = await store.recover();
        expect(recovered.sessions.map((s) => s.id)).to.deep.equal(["s-c", "s-a", "s-b"]);
        expect(recovered.sessions[0]).to.deep.equal(session("s-c", { createdAtMs: 100 }));
        expect(recovered.outbox).to.deep.equal([
          outbox("s-a", 3),
          outbox("s-a", 5),
          outbox("s-a", 9),
          outbox("s-b", 7),
          outbox("s-c", 1),
        ]);
      });

      it("removes delivered items and ignores removing what is not there", async () => {
        await store.commit({ outboxAdd: [outbox("s1", 1), outbox("s1", 2)] });
        await store.commit({ outboxRemove: [outbox("s1", 1), outbox("s1", 99), outbox("s-none", 1)] });
        expect((await store.recover()).outbox).to.deep.equal([outbox("s1", 2)]);
        await store.commit({ outboxRemove: [outbox("s1", 2)] });
        expect((await store.recover()).outbox).to.deep.equal([]);
      });

      it("adds then removes within one batch, in that order", async () => {
        await store.commit({
          outboxAdd: [outbox("s1", 1), outbox("s1", 2)],
          outboxRemove: [outbox("s1", 1)],
        });
        expect((await store.recover()).outbox).to.deep.equal([outbox("s1", 2)]);
      });

      it("treats adding the same message again as a replacement", async () => {
        await store.commit({ outboxAdd: [outbox("s1", 4)] });
        await store.commit({ outboxAdd: [{ sessionId: "s1", messageId: "s1-m4", index: 6 }] });
        expect((await store.recover()).outbox).to.deep.equal([
          { sessionId: "s1", messageId: "s1-m4", index: 6 },
        ]);
      });
    });

    describe("listing sessions", () => {
      // Ten sessions, several sharing a creation time so the id decides their order.
      const all: SessionRecord[] = [
        session("s05", { createdAtMs: 500, service: "a.A", principal: "alice" }),
        session("s01", { createdAtMs: 100, service: "a.A", principal: "bob" }),
        session("s03", { createdAtMs: 300, service: "b.B", principal: "alice" }),
        session("s3b", { createdAtMs: 300, service: "a.A", principal: "alice" }),
        session("s3a", { createdAtMs: 300, service: "a.A", principal: "bob" }),
        ended(session("s02", { createdAtMs: 200, service: "b.B", principal: "alice" }), 900),
        ended(session("s04", { createdAtMs: 400, service: "a.A", principal: "alice" }), 900),
        { ...session("s06", { createdAtMs: 600, service: "a.A", principal: "bob" }), state: "expired" },
        session("s07", { createdAtMs: 700, service: "b.B", principal: "bob" }),
        session("s3c", { createdAtMs: 300, service: "b.B", principal: "bob" }),
      ];
      const newestFirst = ["s07", "s06", "s05", "s04", "s03", "s3a", "s3b", "s3c", "s02", "s01"];

      const listAll = async (query: Omit<SessionQuery, "pageToken">): Promise<string[][]> => {
        const pages: string[][] = [];
        let pageToken: string | undefined;
        do {
          const page = await store.listSessions(pageToken === undefined ? query : { ...query, pageToken });
          pages.push(page.sessions.map((s) => s.id));
          pageToken = page.nextPageToken;
        } while (pageToken !== undefined && pages.length < 100);
        return pages;
      };

      beforeEach(async () => {
        await store.commit({ sessions: all.slice(0, 5) });
        await store.commit({ sessions: all.slice(5) });
      });

      it("lists newest first, then by id, with whole records", async () => {
        const page = await store.listSessions({ pageSize: 100 });
        expect(page.sessions.map((s) => s.id)).to.deep.equal(newestFirst);
        expect(page.sessions[3]).to.deep.equal(all[6]);
        expect(page.nextPageToken).to.equal(undefined);
      });

      it("pages to exhaustion with no duplicates or gaps, for every page size", async () => {
        for (let pageSize = 1; pageSize <= 11; pageSize++) {
          const pages = await listAll({ pageSize });
          expect(pages.flat(), `pageSize ${pageSize}`).to.deep.equal(newestFirst);
          expect(pages.length, `pageSize ${pageSize}`).to.equal(Math.ceil(newestFirst.length / pageSize));
          for (const page of pages.slice(0, -1)) expect(page).to.have.length(pageSize);
        }
      });

      it("filters by service, state and principal, alone and together", async () => {
        const ids = async (query: Omit<SessionQuery, "pageSize">): Promise<string[]> =>
          (await store.listSessions({ pageSize: 100, ...query })).sessions.map((s) => s.id);
        expect(await ids({ service: "a.A" })).to.deep.equal(["s06", "s05", "s04", "s3a", "s3b", "s01"]);
        expect(await ids({ state: "active" })).to.deep.equal([
          "s07",
          "s05",
          "s03",
          "s3a",
          "s3b",
          "s3c",
          "s01",
        ]);
        expect(await ids({ state: "closed" })).to.deep.equal(["s04", "s02"]);
        expect(await ids({ state: "expired" })).to.deep.equal(["s06"]);
        expect(await ids({ principal: "alice" })).to.deep.equal(["s05", "s04", "s03", "s3b", "s02"]);
        expect(await ids({ service: "a.A", state: "active" })).to.deep.equal(["s05", "s3a", "s3b", "s01"]);
        expect(await ids({ service: "b.B", principal: "bob" })).to.deep.equal(["s07", "s3c"]);
        expect(await ids({ service: "a.A", state: "active", principal: "alice" })).to.deep.equal([
          "s05",
          "s3b",
        ]);
        expect(await ids({ service: "c.C" })).to.deep.equal([]);
        expect(await ids({ principal: "mallory" })).to.deep.equal([]);
      });

      it("pages through a filtered listing", async () => {
        expect(await listAll({ pageSize: 2, service: "a.A", state: "active" })).to.deep.equal([
          ["s05", "s3a"],
          ["s3b", "s01"],
        ]);
        expect(await listAll({ pageSize: 1, principal: "alice", state: "closed" })).to.deep.equal([
          ["s04"],
          ["s02"],
        ]);
      });

      it("continues after the last session of a page when sessions arrive between pages", async () => {
        const first = await store.listSessions({ pageSize: 4 });
        expect(first.sessions.map((s) => s.id)).to.deep.equal(["s07", "s06", "s05", "s04"]);
        // One lands before the cut, one after it: only the later one shows on the next page.
        await store.commit({
          sessions: [session("s00", { createdAtMs: 0 }), session("s08", { createdAtMs: 800 })],
        });
        const next = await store.listSessions({ pageSize: 100, pageToken: first.nextPageToken ?? "" });
        expect(next.sessions.map((s) => s.id)).to.deep.equal([
          "s03",
          "s3a",
          "s3b",
          "s3c",
          "s02",
          "s01",
          "s00",
        ]);
      });

      it("treats an empty page token as the first page", async () => {
        const page = await store.listSessions({ pageSize: 2, pageToken: "" });
        expect(page.sessions.map((s) => s.id)).to.deep.equal(["s07", "s06"]);
      });

      it("rejects page tokens it did not issue, and page sizes below one", async () => {
        const tokens = [
          "not a token!",
          Buffer.from("not json").toString("base64url"),
          Buffer.from(JSON.stringify({ createdAtMs: 1, id: "x" })).toString("base64url"),
          Buffer.from(JSON.stringify([1])).toString("base64url"),
          Buffer.from(JSON.stringify(["1", "x"])).toString("base64url"),
          Buffer.from(JSON.stringify([1, 2])).toString("base64url"),
        ];
        for (const pageToken of tokens) {
          await expectBridgeError(
            store.listSessions({ pageSize: 2, pageToken }),
            Code.INVALID_ARGUMENT,
            Reason.INVALID_REQUEST,
          );
        }
        await expectBridgeError(
          store.listSessions({ pageSize: 0 }),
          Code.INVALID_ARGUMENT,
          Reason.INVALID_REQUEST,
        );
        await expectBridgeError(
          store.listSessions({ pageSize: 2.5 }),
          Code.INVALID_ARGUMENT,
          Reason.INVALID_REQUEST,
        );
      });
    });

    describe("correlation uniqueness among live sessions (S5)", () => {
      const keyed = (id: string, key: string, fields: Partial<SessionRecord> = {}): SessionRecord =>
        session(id, {
          correlationSet: "byOrder",
          correlation: { orderId: key },
          correlationKey: key,
          ...fields,
        });

      it("rejects a second live session with the same key and applies none of its batch", async () => {
        await store.commit({ sessions: [keyed("s1", "o-1")] });
        await expectBridgeError(
          store.commit({
            sessions: [session("s-other"), keyed("s2", "o-1")],
            entries: [entry("s2", 1)],
            idempotency: [idempotency("alice", "k2")],
            outboxAdd: [outbox("s2", 1)],
          }),
          Code.ALREADY_EXISTS,
          Reason.SESSION_ALREADY_EXISTS,
        );
        expect(await store.getSession("s2")).to.equal(undefined);
        expect(await store.getSession("s-other")).to.equal(undefined);
        expect(await store.readJournal("s2", 1, 10)).to.deep.equal([]);
        expect(await store.getIdempotency("alice", "k2")).to.equal(undefined);
        expect(await store.recover()).to.deep.equal({ sessions: [keyed("s1", "o-1")], outbox: [] });
      });

      it("rejects two live sessions with the same key in one batch", async () => {
        await expectBridgeError(
          store.commit({ sessions: [keyed("s1", "o-1"), keyed("s2", "o-1")] }),
          Code.ALREADY_EXISTS,
          Reason.SESSION_ALREADY_EXISTS,
        );
        expect(await store.getSession("s1")).to.equal(undefined);
      });

      it("frees the key once the session holding it is no longer live", async () => {
        const first = keyed("s1", "o-1");
        await store.commit({ sessions: [first] });
        await store.commit({ sessions: [ended(first, 2_000)] });
        await store.commit({ sessions: [keyed("s2", "o-1")] });
        await store.commit({ sessions: [ended(keyed("s2", "o-1"), 3_000)] });
        await store.commit({ sessions: [keyed("s3", "o-1")] });
        expect((await store.recover()).sessions.map((s) => s.id)).to.deep.equal(["s3"]);
        // Ending the holder and starting the next in one batch works when the end comes first.
        await store.commit({ sessions: [ended(keyed("s3", "o-1"), 4_000), keyed("s4", "o-1")] });
        expect((await store.getSession("s4"))?.state).to.equal("active");
      });

      it("rejects a batch that starts the next holder before ending the current one", async () => {
        await store.commit({ sessions: [keyed("s1", "o-1")] });
        await expectBridgeError(
          store.commit({ sessions: [keyed("s2", "o-1"), ended(keyed("s1", "o-1"), 2_000)] }),
          Code.ALREADY_EXISTS,
          Reason.SESSION_ALREADY_EXISTS,
        );
        expect((await store.getSession("s1"))?.state).to.equal("active");
      });

      it("does not let a reactivated session take a key another live session holds", async () => {
        await store.commit({ sessions: [ended(keyed("s1", "o-1"), 2_000), keyed("s2", "o-1")] });
        await expectBridgeError(
          store.commit({ sessions: [keyed("s1", "o-1")] }),
          Code.ALREADY_EXISTS,
          Reason.SESSION_ALREADY_EXISTS,
        );
      });

      it("allows the same key in different services and different keys in one service", async () => {
        await store.commit({
          sessions: [
            keyed("s1", "o-1", { service: "shop.v1.Orders" }),
            keyed("s2", "o-1", { service: "shop.v1.Payments" }),
            keyed("s3", "o-2", { service: "shop.v1.Orders" }),
          ],
        });
        expect((await store.recover()).sessions).to.have.length(3);
      });

      it("lets a live session be rewritten with its own key, or move to a free one", async () => {
        await store.commit({ sessions: [keyed("s1", "o-1")] });
        await store.commit({ sessions: [keyed("s1", "o-1", { nextSeq: 2 })] });
        await store.commit({ sessions: [keyed("s1", "o-2")] });
        await store.commit({ sessions: [keyed("s2", "o-1")] });
        expect((await store.recover()).sessions.map((s) => s.correlationKey)).to.deep.equal(["o-2", "o-1"]);
      });

      it("never compares sessions without correlation", async () => {
        await store.commit({ sessions: [session("s1"), session("s2")] });
        await store.commit({ sessions: [session("s3")] });
        expect((await store.recover()).sessions).to.have.length(3);
      });
    });

    describe("batches", () => {
      it("applies every part of a batch together", async () => {
        const s = session("s1", { journalLength: 2 });
        await store.commit({
          sessions: [s],
          entries: [entry("s1", 1), entry("s1", 2)],
          idempotency: [idempotency("alice", "k", { sessionId: "s1" })],
          outboxAdd: [outbox("s1", 2)],
        });
        expect(await store.getSession("s1")).to.deep.equal(s);
        expect(await store.readJournal("s1", 1, 10)).to.deep.equal([entry("s1", 1), entry("s1", 2)]);
        expect(await store.getIdempotency("alice", "k")).to.deep.equal(
          idempotency("alice", "k", { sessionId: "s1" }),
        );
        expect(await store.recover()).to.deep.equal({ sessions: [s], outbox: [outbox("s1", 2)] });
      });

      it("stays usable after a rejected batch", async () => {
        await store.commit({ entries: [entry("s1", 1)] });
        await expectBridgeError(
          store.commit({ entries: [entry("s1", 1)] }),
          Code.ABORTED,
          Reason.JOURNAL_CONFLICT,
        );
        await store.commit({ entries: [entry("s1", 2)] });
        expect(await store.readJournal("s1", 1, 10)).to.deep.equal([entry("s1", 1), entry("s1", 2)]);
      });

      it("resolves many concurrent commits, all of them, in the order they were made", async () => {
        const count = 300;
        const resolved: number[] = [];
        const commits = Array.from({ length: count }, (_, i) =>
          store
            .commit({ sessions: [session("s1", { journalLength: i + 1 })], entries: [entry("s1", i + 1)] })
            .then(() => {
              resolved.push(i);
            }),
        );
        await Promise.all(commits);
        expect(resolved).to.deep.equal(Array.from({ length: count }, (_, i) => i));
        expect(await store.readJournal("s1", 1, count + 1)).to.have.length(count);
        expect((await store.getSession("s1"))?.journalLength).to.equal(count);
      });

      it("rejects only the bad batches among concurrent ones", async () => {
        const outcomes = await Promise.allSettled([
          store.commit({ entries: [entry("s1", 1)] }),
          store.commit({ entries: [entry("s1", 1)] }),
          store.commit({ entries: [entry("s1", 2)] }),
          store.commit({ sessions: [session("s2", { correlationKey: "k" })] }),
          store.commit({ sessions: [session("s3", { correlationKey: "k" })] }),
          store.commit({ entries: [entry("s1", 3)] }),
        ]);
        expect(outcomes.map((o) => o.status)).to.deep.equal([
          "fulfilled",
          "rejected",
          "fulfilled",
          "fulfilled",
          "rejected",
          "fulfilled",
        ]);
        expect((await store.readJournal("s1", 1, 10)).map((e) => e.index)).to.deep.equal([1, 2, 3]);
      });
    });

    describe("idempotency records (S8)", () => {
      it("inserts, then replaces by principal and key", async () => {
        const inFlight = idempotency("alice", "k");
        await store.commit({ idempotency: [inFlight, idempotency("bob", "k", { requestHash: "other" })] });
        expect(await store.getIdempotency("alice", "k")).to.deep.equal(inFlight);

        const answered = { ...inFlight, sessionId: "s1", outcome: new Uint8Array([1, 2]) };
        await store.commit({ idempotency: [answered] });
        expect(await store.getIdempotency("alice", "k")).to.deep.equal(answered);
        expect((await store.getIdempotency("bob", "k"))?.requestHash).to.equal("other");
        expect(await store.getIdempotency("alice", "other-key")).to.equal(undefined);
      });
    });

    describe("purge", () => {
      beforeEach(async () => {
        const sessions = [
          session("live", { createdAtMs: 10 }),
          ended(session("old-closed", { createdAtMs: 20 }), 100),
          { ...ended(session("old-expired", { createdAtMs: 30 }), 200), state: "expired" as const },
          ended(session("at-cutoff", { createdAtMs: 40 }), 250),
          ended(session("recent", { createdAtMs: 50 }), 300),
        ];
        await store.commit({
          sessions,
          entries: sessions.flatMap((s) => [entry(s.id, 1), entry(s.id, 2, { inReplyTo: `${s.id}-m1` })]),
          outboxAdd: sessions.map((s) => outbox(s.id, 1)),
          idempotency: [
            idempotency("alice", "i10", { createdAtMs: 10 }),
            idempotency("alice", "i20", { createdAtMs: 20, sessionId: "live" }),
            idempotency("bob", "i25", { createdAtMs: 25 }),
            idempotency("bob", "i30", { createdAtMs: 30 }),
          ],
        });
      });

      it("deletes sessions ended before the cut-off with their journals and outbox, and old idempotency records", async () => {
        expect(await store.purge(250, 25)).to.deep.equal({ sessions: 2, idempotency: 2 });

        for (const gone of ["old-closed", "old-expired"]) {
          expect(await store.getSession(gone), gone).to.equal(undefined);
          expect(await store.readJournal(gone, 1, 10), gone).to.deep.equal([]);
          expect(await store.findByMessageId(gone, `${gone}-m1`), gone).to.equal(undefined);
        }
        for (const kept of ["live", "at-cutoff", "recent"]) {
          expect(await store.getSession(kept), kept).to.not.equal(undefined);
          expect(await store.readJournal(kept, 1, 10), kept).to.have.length(2);
        }
        expect((await store.recover()).outbox.map((o) => o.sessionId)).to.deep.equal([
          "at-cutoff",
          "live",
          "recent",
        ]);
        expect(await store.getIdempotency("alice", "i10")).to.equal(undefined);
        expect(await store.getIdempotency("alice", "i20")).to.equal(undefined);
        expect(await store.getIdempotency("bob", "i25")).to.not.equal(undefined);
        expect(await store.getIdempotency("bob", "i30")).to.not.equal(undefined);
        expect((await store.listSessions({ pageSize: 10 })).sessions.map((s) => s.id)).to.deep.equal([
          "recent",
          "at-cutoff",
          "live",
        ]);
      });

      it("never deletes a live session and counts nothing twice", async () => {
        expect(await store.purge(Number.MAX_SAFE_INTEGER, 0)).to.deep.equal({ sessions: 4, idempotency: 0 });
        expect(await store.purge(Number.MAX_SAFE_INTEGER, 0)).to.deep.equal({ sessions: 0, idempotency: 0 });
        expect((await store.recover()).sessions.map((s) => s.id)).to.deep.equal(["live"]);
        expect(await store.readJournal("live", 1, 10)).to.have.length(2);
      });

      it("purges a large backlog in steps while commits go on, and removes everything due", async () => {
        const sessionsDue = 400;
        const entriesEach = 100;
        for (let first = 0; first < sessionsDue; first += 20) {
          const ids = Array.from({ length: 20 }, (_, i) => `backlog-${first + i}`);
          await store.commit({
            sessions: ids.map((id) => ended(session(id, { journalLength: entriesEach }), 100)),
            entries: ids.flatMap((id) => Array.from({ length: entriesEach }, (_, i) => entry(id, i + 1))),
            outboxAdd: ids.map((id) => outbox(id, 1)),
          });
        }
        for (let first = 0; first < 2_000; first += 500) {
          await store.commit({
            idempotency: Array.from({ length: 500 }, (_, i) =>
              idempotency("carol", `old-${first + i}`, { createdAtMs: 10 }),
            ),
          });
        }
        await store.commit({ sessions: [session("busy")] });

        let purgeDone = false;
        const purging = store.purge(250, 25).then((counts) => {
          purgeDone = true;
          return counts;
        });
        // Traffic during the purge: each commit is issued after the previous one resolved.
        let committedDuringPurge = 0;
        let index = 0;
        while (!purgeDone && index < 100_000) {
          index++;
          await store.commit({
            sessions: [session("busy", { journalLength: index })],
            entries: [entry("busy", index)],
          });
          if (!purgeDone) committedDuringPurge++;
          await setImmediate();
        }
        expect(committedDuringPurge, "commits that completed while the purge was running").to.be.at.least(2);
        expect(await purging).to.deep.equal({ sessions: sessionsDue + 2, idempotency: 2_000 + 2 });

        for (let i = 0; i < sessionsDue; i++) {
          expect(await store.readJournal(`backlog-${i}`, 1, 1), `backlog-${i}`).to.deep.equal([]);
          expect(await store.getSession(`backlog-${i}`), `backlog-${i}`).to.equal(undefined);
        }
        expect(await store.getIdempotency("carol", "old-1999")).to.equal(undefined);
        expect((await store.recover()).outbox.map((o) => o.sessionId)).to.deep.equal([
          "at-cutoff",
          "live",
          "recent",
        ]);
        expect((await store.readJournal("busy", 1, index + 1)).map((e) => e.index)).to.deep.equal(
          Array.from({ length: index }, (_, i) => i + 1),
        );
        expect((await store.getSession("busy"))?.journalLength).to.equal(index);
      });
    });

    describe("journal appends continue the stored journal (S9)", () => {
      beforeEach(async () => {
        await store.commit({ sessions: [session("s1")], entries: [1, 2, 3].map((i) => entry("s1", i)) });
      });

      const conflict = async (batch: StoreBatch, sessionId: string, expectedIndex: number): Promise<void> => {
        const error = await expectBridgeError(store.commit(batch), Code.ABORTED, Reason.JOURNAL_CONFLICT);
        expect(error.metadata).to.deep.equal({
          session_id: sessionId,
          expected_index: String(expectedIndex),
        });
      };

      it("refuses a gap, an overlap, a repeat and a start other than 1, and keeps what was stored", async () => {
        await conflict({ entries: [entry("s1", 5)] }, "s1", 4);
        await conflict({ entries: [entry("s1", 3, { messageId: "overwrite" })] }, "s1", 4);
        await conflict({ entries: [entry("s1", 4), entry("s1", 6)] }, "s1", 5);
        await conflict({ entries: [entry("s1", 4), entry("s1", 4)] }, "s1", 5);
        await conflict({ entries: [entry("s1", 5), entry("s1", 4)] }, "s1", 4);
        await conflict({ entries: [entry("s-new", 2)] }, "s-new", 1);
        await conflict({ entries: [entry("s1", 0)] }, "s1", 4);
        expect((await store.readJournal("s1", 1, 10)).map((e) => [e.index, e.messageId])).to.deep.equal([
          [1, "s1-m1"],
          [2, "s1-m2"],
          [3, "s1-m3"],
        ]);
        expect(await store.readJournal("s-new", 1, 10)).to.deep.equal([]);
      });

      it("accepts contiguous appends, with sessions interleaved in a batch", async () => {
        await store.commit({
          entries: [entry("s1", 4), entry("s2", 1), entry("s1", 5), entry("s2", 2), entry("s1", 6)],
        });
        expect((await store.readJournal("s1", 1, 10)).map((e) => e.index)).to.deep.equal([1, 2, 3, 4, 5, 6]);
        expect((await store.readJournal("s2", 1, 10)).map((e) => e.index)).to.deep.equal([1, 2]);
      });

      it("leaves nothing of a batch with one conflicting session behind", async () => {
        await conflict(
          {
            sessions: [session("s1", { journalLength: 4 }), session("s2", { journalLength: 2 })],
            entries: [entry("s2", 1), entry("s2", 2), entry("s1", 4), entry("s1", 4)],
            idempotency: [idempotency("alice", "k")],
            outboxAdd: [outbox("s2", 2)],
            outboxRemove: [outbox("s1", 1)],
          },
          "s1",
          5,
        );
        expect(await store.getSession("s1")).to.deep.equal(session("s1"));
        expect(await store.getSession("s2")).to.equal(undefined);
        expect(await store.readJournal("s2", 1, 10)).to.deep.equal([]);
        expect((await store.readJournal("s1", 1, 10)).map((e) => e.index)).to.deep.equal([1, 2, 3]);
        expect(await store.getIdempotency("alice", "k")).to.equal(undefined);
        expect((await store.recover()).outbox).to.deep.equal([]);
      });

      it("lets exactly one of two writers racing for the same index win", async () => {
        const outcomes = await Promise.allSettled([
          store.commit({ entries: [entry("s1", 4, { messageId: "first" })] }),
          store.commit({ entries: [entry("s1", 4, { messageId: "second" })] }),
          store.commit({ entries: [entry("s1", 5, { messageId: "after-first" })] }),
        ]);
        expect(outcomes.map((o) => o.status)).to.deep.equal(["fulfilled", "rejected", "fulfilled"]);
        const lost = outcomes[1];
        expect(lost?.status === "rejected" && (lost.reason as { reason?: string }).reason).to.equal(
          Reason.JOURNAL_CONFLICT,
        );
        expect((await store.readJournal("s1", 4, 10)).map((e) => e.messageId)).to.deep.equal([
          "first",
          "after-first",
        ]);
      });
    });

    describe("finding a live session by correlation (S5)", () => {
      const keyed = (id: string, key: string, fields: Partial<SessionRecord> = {}): SessionRecord =>
        session(id, {
          correlationSet: "byOrder",
          correlation: { orderId: key },
          correlationKey: key,
          ...fields,
        });

      it("returns the live session bound to the key, and nothing for other keys or services", async () => {
        const s1 = keyed("s1", "o-1", { nextSeq: 3 });
        await store.commit({
          sessions: [
            s1,
            keyed("s2", "o-2"),
            keyed("s3", "o-1", { service: "shop.v1.Payments" }),
            session("s4"),
          ],
        });
        expect(await store.findSessionByCorrelation("shop.v1.Orders", "o-1")).to.deep.equal(s1);
        expect((await store.findSessionByCorrelation("shop.v1.Orders", "o-2"))?.id).to.equal("s2");
        expect((await store.findSessionByCorrelation("shop.v1.Payments", "o-1"))?.id).to.equal("s3");
        expect(await store.findSessionByCorrelation("shop.v1.Orders", "o-3")).to.equal(undefined);
        expect(await store.findSessionByCorrelation("shop.v1.Other", "o-1")).to.equal(undefined);
        expect(await store.findSessionByCorrelation("shop.v1.Orders", "")).to.equal(undefined);
      });

      it("forgets a session once it has ended and finds the next holder", async () => {
        await store.commit({ sessions: [keyed("s1", "o-1")] });
        await store.commit({ sessions: [ended(keyed("s1", "o-1"), 2_000)] });
        expect(await store.findSessionByCorrelation("shop.v1.Orders", "o-1")).to.equal(undefined);
        await store.commit({ sessions: [keyed("s2", "o-1")] });
        expect((await store.findSessionByCorrelation("shop.v1.Orders", "o-1"))?.id).to.equal("s2");
        // A session that moves to another key no longer answers for the old one.
        await store.commit({ sessions: [keyed("s2", "o-9")] });
        expect(await store.findSessionByCorrelation("shop.v1.Orders", "o-1")).to.equal(undefined);
        expect((await store.findSessionByCorrelation("shop.v1.Orders", "o-9"))?.id).to.equal("s2");
      });
    });

    describe("sessions loaded when first touched", () => {
      it("answers by id and by correlation from a store opened fresh on the same data", async () => {
        const live = session("s1", {
          correlationSet: "byOrder",
          correlation: { orderId: "o-1" },
          correlationKey: "o-1",
          nextSeq: 2,
          journalLength: 2,
        });
        const gone = ended(session("s2", { correlationKey: "o-2" }), 3_000);
        await store.commit({ sessions: [live, gone], entries: [entry("s1", 1), entry("s1", 2)] });

        // SQLite: a new store on the same file, as a bridge that did not write it sees it.
        // Memory: the same instance, the only one that can see the data.
        if (opened.reopen !== undefined) store = await opened.reopen();
        expect(await store.getSession("s1")).to.deep.equal(live);
        expect(await store.getSession("s2")).to.deep.equal(gone);
        expect(await store.findSessionByCorrelation("shop.v1.Orders", "o-1")).to.deep.equal(live);
        expect(await store.findSessionByCorrelation("shop.v1.Orders", "o-2")).to.equal(undefined);
        expect((await store.readJournal("s1", 1, 10)).map((e) => e.index)).to.deep.equal([1, 2]);
        // Its journal continues where the other instance left it.
        await expectBridgeError(
          store.commit({ entries: [entry("s1", 2)] }),
          Code.ABORTED,
          Reason.JOURNAL_CONFLICT,
        );
        await store.commit({ entries: [entry("s1", 3)] });
      });
    });

    describe("following a journal (S9)", () => {
      let controller: AbortController;

      beforeEach(() => {
        controller = new AbortController();
      });

      afterEach(() => {
        controller.abort();
      });

      const commitRange = async (sessionId: string, from: number, to: number): Promise<void> => {
        await store.commit({
          entries: Array.from({ length: to - from + 1 }, (_, i) => entry(sessionId, from + i)),
        });
      };

      /** Reads `count` entries from an iterator, then leaves it open. */
      const take = async (iterator: AsyncIterator<JournalRecord>, count: number): Promise<number[]> => {
        const seen: number[] = [];
        while (seen.length < count) {
          const next = await iterator.next();
          if (next.done === true) break;
          seen.push(next.value.index);
        }
        return seen;
      };

      const range = (from: number, to: number): number[] =>
        Array.from({ length: to - from + 1 }, (_, i) => from + i);

      it("yields a stored journal from the start, then what is committed later", async () => {
        await commitRange("s1", 1, 5);
        await commitRange("s2", 1, 2);
        const iterator = store.followJournal("s1", 1, controller.signal)[Symbol.asyncIterator]();
        expect(await take(iterator, 5)).to.deep.equal(range(1, 5));
        const later = take(iterator, 4);
        await commitRange("s1", 6, 6);
        await commitRange("s2", 3, 3);
        await commitRange("s1", 7, 9);
        expect(await later).to.deep.equal(range(6, 9));
        const [first] = await store.readJournal("s1", 6, 1);
        expect(first).to.deep.equal(entry("s1", 6));
      });

      it("starts in the middle, and treats index 0 as the start", async () => {
        await commitRange("s1", 1, 6);
        const middle = store.followJournal("s1", 4, controller.signal)[Symbol.asyncIterator]();
        expect(await take(middle, 3)).to.deep.equal([4, 5, 6]);
        const zero = store.followJournal("s1", 0, controller.signal)[Symbol.asyncIterator]();
        expect(await take(zero, 6)).to.deep.equal(range(1, 6));
        const ahead = store.followJournal("s1", 8, controller.signal)[Symbol.asyncIterator]();
        const waiting = take(ahead, 2);
        await commitRange("s1", 7, 9);
        expect(await waiting).to.deep.equal([8, 9]);
      });

      it("follows a journal that does not exist yet, with concurrent commits, without gaps or repeats", async () => {
        const iterator = store.followJournal("s1", 1, controller.signal)[Symbol.asyncIterator]();
        const all = take(iterator, 60);
        await Promise.all(Array.from({ length: 60 }, (_, i) => commitRange("s1", i + 1, i + 1)));
        expect(await all).to.deep.equal(range(1, 60));
      });

      it("holds no backlog for a slow reader while 10k entries are committed", async () => {
        await commitRange("s1", 1, 1);
        const follower = store.followJournal("s1", 1, controller.signal);
        const iterator = follower[Symbol.asyncIterator]();
        expect(await take(iterator, 1)).to.deep.equal([1]);
        const heldBefore = follower.heldEntries;
        expect(heldBefore).to.equal(0);
        // The reader is paused while 10,000 entries become durable.
        for (let from = 2; from <= 10_001; from += 500) await commitRange("s1", from, from + 499);
        expect(follower.heldEntries, "entries queued for a paused reader").to.equal(heldBefore);
        let expected = 2;
        let maxHeld = 0;
        while (expected <= 10_001) {
          const next = await iterator.next();
          if (next.done === true) break;
          expect(next.value.index).to.equal(expected);
          expected++;
          maxHeld = Math.max(maxHeld, follower.heldEntries);
        }
        expect(expected).to.equal(10_002);
        expect(maxHeld).to.be.lessThan(FOLLOW_PAGE_SIZE);
      });

      it("ends quietly on abort, whether waiting, paused or not yet started", async () => {
        await commitRange("s1", 1, 3);
        const waiting = store.followJournal("s1", 4, controller.signal)[Symbol.asyncIterator]();
        const pending = waiting.next();
        const paused = store.followJournal("s1", 1, controller.signal)[Symbol.asyncIterator]();
        expect(await take(paused, 1)).to.deep.equal([1]);
        expect(opened.followers()).to.equal(2);
        controller.abort();
        expect(await pending).to.deep.equal({ done: true, value: undefined });
        expect(await paused.next()).to.deep.equal({ done: true, value: undefined });
        const late = store.followJournal("s1", 1, controller.signal)[Symbol.asyncIterator]();
        expect(await late.next()).to.deep.equal({ done: true, value: undefined });
        expect(opened.followers(), "followers left registered").to.equal(0);
      });

      it("lets go of a follower the reader stops early", async () => {
        await commitRange("s1", 1, 3);
        for await (const followed of store.followJournal("s1", 1, controller.signal)) {
          if (followed.index === 2) break;
        }
        expect(opened.followers()).to.equal(0);
      });

      it("rejects a fractional index, and a waiting follower when the store closes", async () => {
        const bad = store.followJournal("s1", 1.5, controller.signal)[Symbol.asyncIterator]();
        await expectBridgeError(bad.next(), Code.INVALID_ARGUMENT, Reason.INVALID_REQUEST);
        const waiting = store.followJournal("s1", 1, controller.signal)[Symbol.asyncIterator]();
        const pending = waiting.next();
        await store.close();
        await expectBridgeError(pending, Code.UNAVAILABLE, Reason.SHUTTING_DOWN);
      });
    });

    describe("close", () => {
      it("finishes commits already made, is idempotent, and rejects every later call", async () => {
        const pending = store.commit({ sessions: [session("s1")] });
        const closing = store.close();
        await pending;
        await closing;
        await store.close();

        const closed = (call: Promise<unknown>) =>
          expectBridgeError(call, Code.UNAVAILABLE, Reason.SHUTTING_DOWN);
        await closed(store.commit({ sessions: [session("s2")] }));
        await closed(store.recover());
        await closed(store.getSession("s1"));
        await closed(store.listSessions({ pageSize: 1 }));
        await closed(store.readJournal("s1", 1, 1));
        await closed(store.findBySeq("s1", 1));
        await closed(store.findByMessageId("s1", "m"));
        await closed(store.getIdempotency("alice", "k"));
        await closed(store.purge(0, 0));
        await closed(store.findSessionByCorrelation("shop.v1.Orders", "k"));
        await closed(
          store.followJournal("s1", 1, new AbortController().signal)[Symbol.asyncIterator]().next(),
        );
      });
    });
  });
}
