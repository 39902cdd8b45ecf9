import { randomBytes } from "node:crypto";
import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { expect } from "chai";
import { Code } from "../../../bridge/errors/code.js";
import { Reason } from "../../../bridge/errors/reason.js";
import { batchToJson, encodeJson } from "../../../bridge/store/jetstream-codec.js";
import { createJetStreamStore } from "../../../bridge/store/jetstream-store.js";
import type { SessionStore } from "../../../bridge/store/session-store.js";
import { type NatsServerFixture, startNatsServer } from "../../support/nats-server.js";
import { expectBridgeError } from "./expect-bridge-error.js";
import { entry, outbox, session } from "./store-records.js";

/**
 * What only a shared, durable store has to get right: two stores (two bridges) on one
 * prefix, and a batch whose write-ahead message was stored by a bridge that stopped
 * before applying it.
 */
describe("JetStream store: shared by two stores, and restarted mid-commit", function () {
  this.timeout(60_000);
  let server: NatsServerFixture;
  let prefix: string;
  const open: SessionStore[] = [];

  const openStore = async (): Promise<SessionStore> => {
    const store = await createJetStreamStore({ servers: server.url, prefix, replicas: 1 });
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

  it("applies at open a batch whose write-ahead message was stored but never applied", async () => {
    // Creates the streams and buckets, then stops, as a bridge would before a crash.
    await (await openStore()).close();
    const s = session("s1", { journalLength: 1 });
    const nc = await connect({ servers: server.url });
    try {
      const batch = { sessions: [s], entries: [entry("s1", 1)], outboxAdd: [outbox("s1", 1)] };
      await jetstream(nc).publish(`${prefix}.wal`, encodeJson(batchToJson(batch)));
    } finally {
      await nc.close();
    }

    const store = await openStore();
    expect(await store.getSession("s1")).to.deep.equal(s);
    expect(await store.readJournal("s1", 1, 10)).to.deep.equal([entry("s1", 1)]);
    expect((await store.recover()).outbox).to.deep.equal([outbox("s1", 1)]);

    const check = await connect({ servers: server.url });
    try {
      const info = await (await jetstreamManager(check)).streams.info(`${prefix}_wal`);
      expect(info.state.messages, "write-ahead messages left").to.equal(0);
    } finally {
      await check.close();
    }
  });

  it("opens two stores at once over one write-ahead message, both applying it, neither failing", async () => {
    await (await openStore()).close();
    const nc = await connect({ servers: server.url });
    try {
      for (let i = 1; i <= 20; i++) {
        const batch = { sessions: [session(`s${i}`, { journalLength: 1 })], entries: [entry(`s${i}`, 1)] };
        await jetstream(nc).publish(`${prefix}.wal`, encodeJson(batchToJson(batch)));
      }
    } finally {
      await nc.close();
    }
    const [a, b] = await Promise.all([openStore(), openStore()]);
    expect((await a.recover()).sessions).to.have.length(20);
    expect(await b.readJournal("s20", 1, 10)).to.deep.equal([entry("s20", 1)]);
    await a.commit({ entries: [entry("s1", 2)] });
    await b.commit({ entries: [entry("s2", 2)] });
  });

  it("binds a correlation key to one live session across two stores (S5)", async () => {
    const a = await openStore();
    const b = await openStore();
    const keyed = (id: string) => session(id, { correlationKey: "o-1", correlation: { id: "o-1" } });
    const outcomes = await Promise.allSettled([
      a.commit({ sessions: [keyed("s-a")] }),
      b.commit({ sessions: [keyed("s-b")] }),
    ]);
    expect(outcomes.map((o) => o.status).sort()).to.deep.equal(["fulfilled", "rejected"]);
    const rejected = outcomes.find((o) => o.status === "rejected");
    await expectBridgeError(
      Promise.reject(rejected?.reason),
      Code.ALREADY_EXISTS,
      Reason.SESSION_ALREADY_EXISTS,
    );
    const live = (await a.recover()).sessions.map((s) => s.id);
    expect(live).to.have.length(1);
    await expectBridgeError(
      b.commit({ sessions: [keyed("s-c")] }),
      Code.ALREADY_EXISTS,
      Reason.SESSION_ALREADY_EXISTS,
    );
  });

  it("refuses a journal index another store took since it last looked, and applies none of the batch", async () => {
    const a = await openStore();
    const b = await openStore();
    await a.commit({ entries: [entry("s1", 1)] });
    await b.commit({ entries: [entry("s1", 2, { messageId: "from-b" })] });

    const conflict = await expectBridgeError(
      a.commit({ sessions: [session("s-other")], entries: [entry("s1", 2)] }),
      Code.ABORTED,
      Reason.JOURNAL_CONFLICT,
    );
    expect(conflict.metadata).to.deep.include({ session_id: "s1", expected_index: "3" });
    expect(await a.getSession("s-other")).to.equal(undefined);
    expect((await a.readJournal("s1", 1, 10)).map((e) => e.messageId)).to.deep.equal(["s1-m1", "from-b"]);
    await a.commit({ entries: [entry("s1", 3)] });
    expect((await b.readJournal("s1", 1, 10)).map((e) => e.index)).to.deep.equal([1, 2, 3]);
  });

  it("wakes a follower on one store for entries committed through another (S9)", async () => {
    const a = await openStore();
    const b = await openStore();
    await a.commit({ entries: [entry("s1", 1)] });
    const controller = new AbortController();
    const follower = b.followJournal("s1", 1, controller.signal)[Symbol.asyncIterator]();
    expect((await follower.next()).value?.index).to.equal(1);
    // b commits nothing: only the consumer on the journal subject can wake it.
    const second = follower.next();
    await a.commit({ entries: [entry("s1", 2)] });
    expect((await second).value?.index).to.equal(2);
    controller.abort();
    expect((await follower.next()).done).to.equal(true);
  });
});
