import { randomBytes } from "node:crypto";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { expect } from "chai";
import type { BridgeError } from "../../../bridge/errors/bridge-error.js";
import { Code } from "../../../bridge/errors/code.js";
import { Reason } from "../../../bridge/errors/reason.js";
import { batchToJson, encodeJson, sessionToJson, token } from "../../../bridge/store/jetstream-codec.js";
import { createJetStreamStore, type JetStreamSessionStore } from "../../../bridge/store/jetstream-store.js";
import { type NatsServerFixture, startNatsServer } from "../../support/nats-server.js";
import { waitFor } from "../../support/wait.js";
import { expectBridgeError } from "./expect-bridge-error.js";
import { entry, session } from "./store-records.js";

/**
 * The partitioned JetStream store (several replicas, DESIGN §7): a store writes only the
 * partitions it claimed, a claim by another store fences it out before its commit point,
 * and a claim applies the batch a killed writer committed and did not apply.
 */
describe("JetStream store: partitions claimed, fenced and taken over", function () {
  this.timeout(60_000);
  let server: NatsServerFixture;
  let prefix: string;
  const open: JetStreamSessionStore[] = [];
  /** Sessions "p<n>-…" are in partition n. */
  const of = (sessionId: string): number => Number(/^p(\d+)-/.exec(sessionId)?.[1] ?? 0);

  const openStore = async (lost: number[] = []): Promise<JetStreamSessionStore> => {
    const store = await createJetStreamStore({
      servers: server.url,
      prefix,
      partitions: { count: 4, of, onLost: (p) => lost.push(p) },
    });
    open.push(store);
    return store;
  };

  before(async () => {
    server = await startNatsServer({ jetstream: true });
  });

  after(async () => {
    await server?.stop();
  });

  beforeEach(() => {
    prefix = `t${randomBytes(6).toString("hex")}`;
  });

  afterEach(async () => {
    for (const store of open.splice(0)) await store.close();
  });

  it("refuses with UNAVAILABLE a commit to a partition it has not claimed", async () => {
    const store = await openStore();
    await expectBridgeError(
      store.commit({ sessions: [session("p1-a", { journalLength: 1 })], entries: [entry("p1-a", 1)] }),
      Code.UNAVAILABLE,
      Reason.PARTITION_MOVING,
    );
    expect(await store.getSession("p1-a")).to.equal(undefined);
  });

  it("fences out the previous writer: its next commit fails before the commit point, the new owner's succeeds", async () => {
    const lost: number[] = [];
    const first = await openStore(lost);
    const second = await openStore();
    await first.claimPartition(0);
    await first.commit({ sessions: [session("p0-a", { journalLength: 1 })], entries: [entry("p0-a", 1)] });

    // Both believe they own partition 0 and both passed the append check for index 2:
    // only the claim decides, and the old writer learns it at its commit point.
    await second.claimPartition(0);
    await expectBridgeError(
      first.commit({
        sessions: [session("p0-a", { journalLength: 2 })],
        entries: [entry("p0-a", 2, { seq: 1 })],
      }),
      Code.UNAVAILABLE,
      Reason.PARTITION_MOVING,
    );
    expect(lost).to.deep.equal([0]);
    await second.commit({
      sessions: [session("p0-a", { journalLength: 2 })],
      entries: [entry("p0-a", 2, { messageId: "from-second" })],
    });
    const journal = await second.readJournal("p0-a", 1, 10);
    expect(journal.map((e) => e.messageId)).to.deep.equal(["p0-a-m1", "from-second"]);
    // The fenced store is not broken: it still writes the partitions it holds.
    await first.claimPartition(1);
    await first.commit({ sessions: [session("p1-b", { journalLength: 1 })], entries: [entry("p1-b", 1)] });
    expect((await second.getSession("p1-b"))?.journalLength).to.equal(1);
  });

  it("applies, when claiming, the last batch a killed writer committed and never applied", async () => {
    const store = await openStore();
    await store.claimPartition(2);
    await store.commit({ sessions: [session("p2-a", { journalLength: 1 })], entries: [entry("p2-a", 1)] });
    // What a writer killed between its commit point and applying leaves behind.
    const nc = await connect({ servers: server.url });
    try {
      const batch = { sessions: [session("p2-a", { journalLength: 2 })], entries: [entry("p2-a", 2)] };
      await jetstream(nc).publish(`${prefix}.pwal.2`, encodeJson(batchToJson(batch)));
    } finally {
      await nc.close();
    }
    const next = await openStore();
    await next.claimPartition(2);
    expect((await next.getSession("p2-a"))?.journalLength).to.equal(2);
    expect((await next.readJournal("p2-a", 1, 10)).map((e) => e.index)).to.deep.equal([1, 2]);
    await next.commit({ sessions: [session("p2-a", { journalLength: 3 })], entries: [entry("p2-a", 3)] });
  });

  it("answers a journal conflict in a partition with UNAVAILABLE and loads the partition again", async () => {
    // The owner's view of the session is behind its journal (it loaded the partition
    // before the last commit was visible): the retry after the reload is answered from the
    // stored session, so the caller is told to retry, not ABORTED.
    const lost: number[] = [];
    const store = await openStore(lost);
    await store.claimPartition(3);
    await store.commit({
      sessions: [session("p3-a", { journalLength: 2 })],
      entries: [entry("p3-a", 1), entry("p3-a", 2)],
    });
    await expectBridgeError(
      store.commit({
        sessions: [session("p3-a", { journalLength: 2 })],
        entries: [entry("p3-a", 2, { messageId: "stale" })],
      }),
      Code.UNAVAILABLE,
      Reason.PARTITION_MOVING,
    );
    expect(lost).to.deep.equal([3]);
    expect((await store.readJournal("p3-a", 1, 10)).map((e) => e.messageId)).to.deep.equal([
      "p3-a-m1",
      "p3-a-m2",
    ]);
  });

  it("confirms a partition while no other store wrote it, and gives it up once one did", async () => {
    const lost: number[] = [];
    const first = await openStore(lost);
    const second = await openStore();
    expect(await first.confirmPartition(1)).to.equal(false);
    await first.claimPartition(1);
    await first.commit({ sessions: [session("p1-a", { journalLength: 1 })], entries: [entry("p1-a", 1)] });
    expect(await first.confirmPartition(1)).to.equal(true);
    expect(lost).to.deep.equal([]);
    await second.claimPartition(1);
    expect(await first.confirmPartition(1)).to.equal(false);
    expect(lost).to.deep.equal([1]);
    expect(await second.confirmPartition(1)).to.equal(true);
  });

  it("stops retrying to apply its batch once another store claimed the partition, leaving newer records alone", async () => {
    const store = await openStore();
    await store.claimPartition(0);
    await store.commit({ sessions: [session("p0-a", { journalLength: 1 })], entries: [entry("p0-a", 1)] });
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      const journal = `${prefix}_journal`;
      const subjects = (await jsm.streams.info(journal)).config.subjects;
      // Appends to the journal fail for a while (as while its NATS node is down): the
      // batch is committed on the partition's write-ahead subject, and applying it is retried.
      const subject = `${prefix}.pwal.0`;
      const before = (await jsm.streams.getMessage(`${prefix}_pwal`, { last_by_subj: subject }))?.seq ?? 0;
      await jsm.streams.update(journal, { subjects: [`${prefix}.paused.*`] });
      const committing = store.commit({
        sessions: [session("p0-a", { journalLength: 2 })],
        entries: [entry("p0-a", 2)],
      });
      const outcome = committing.then(
        () => undefined,
        (error: unknown) => error,
      );
      let batchSeq = 0;
      await waitFor(
        async () => {
          const last = await jsm.streams.getMessage(`${prefix}_pwal`, { last_by_subj: subject });
          if (last === null || last.seq <= before) return false;
          batchSeq = last.seq;
          return true;
        },
        20_000,
        "the batch on the write-ahead subject",
      );
      // Meanwhile another store claims the partition (applying that batch) and commits a
      // newer record of the session; here its writes are made by hand.
      await jetstream(nc).publish(subject, encodeJson({ fence: Date.now() }), {
        expect: { lastSubjectSequence: batchSeq },
      });
      const sessions = await new Kvm(nc).open(`${prefix}_sessions`);
      await sessions.put(token("p0-a"), encodeJson(sessionToJson(session("p0-a", { journalLength: 3 }))));
      await jsm.streams.update(journal, { subjects });
      // Committed (the claimant applies a claimed partition's last batch before fencing),
      // and the older batch was not written over the newer record.
      expect(await outcome).to.equal(undefined);
      expect((await store.getSession("p0-a"))?.journalLength).to.equal(3);
    } finally {
      await nc.close();
    }
  });

  it("refuses a batch made before the partition was claimed again, though it runs after the claim", async () => {
    const store = await openStore();
    await store.claimPartition(0);
    await store.claimPartition(1);
    const nc = await connect({ servers: server.url });
    try {
      const jsm = await jetstreamManager(nc);
      const journal = `${prefix}_journal`;
      const subjects = (await jsm.streams.info(journal)).config.subjects;
      // A commit on partition 1 whose apply is retried (the journal takes no appends for a
      // while) holds the store's commit queue.
      await jsm.streams.update(journal, { subjects: [`${prefix}.paused.*`] });
      const holding = store.commit({
        sessions: [session("p1-h", { journalLength: 1 })],
        entries: [entry("p1-h", 1)],
      });
      await waitFor(
        async () => {
          const last = await jsm.streams.getMessage(`${prefix}_pwal`, { last_by_subj: `${prefix}.pwal.1` });
          return last !== null && !("fence" in last.json<object>());
        },
        20_000,
        "the holding batch on the write-ahead subject",
      );
      // Partition 0 is lost and loaded again meanwhile; a batch a session made in between
      // (from its state before the reload) waits in the queue behind the held commit.
      store.releasePartition(0);
      const stale = store
        .commit({ sessions: [session("p0-a", { journalLength: 1 })], entries: [entry("p0-a", 1)] })
        .then(
          () => undefined,
          (error: unknown) => error as BridgeError,
        );
      await store.claimPartition(0);
      await jsm.streams.update(journal, { subjects });
      await holding;
      const refused = await stale;
      expect(refused?.code, refused?.message).to.equal(Code.UNAVAILABLE);
      expect(refused?.reason).to.equal(Reason.PARTITION_MOVING);
      expect(await store.readJournal("p0-a", 1, 10)).to.deep.equal([]);
      expect(await store.getSession("p0-a")).to.equal(undefined);
    } finally {
      await nc.close();
    }
  });

  it("refuses a batch that writes sessions of two partitions", async () => {
    const store = await openStore();
    await store.claimPartition(0);
    await store.claimPartition(1);
    await expectBridgeError(
      store.commit({ sessions: [session("p0-x"), session("p1-y")] }),
      Code.INTERNAL,
      Reason.STORE_FAILURE,
    );
  });
});
