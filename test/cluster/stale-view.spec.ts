import { randomBytes } from "node:crypto";
import { expect } from "chai";
import type { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { type LabProcess, startLabProcess } from "../support/lab-process.js";
import { type NatsServerFixture, startNatsServer } from "../support/nats-server.js";
import { type EngineReplica, startEngineReplica } from "./engine-replica.js";

/**
 * A replica whose view of a session is behind the store (DESIGN §7): another replica
 * took the partition over and accepted the next numbered message, and this one has not
 * learned yet that its lease is gone. Every part is real (nats-server, the JetStream
 * store, the engine, the lab process over gRPC); only the lease table is held still, as
 * a replica whose renewals are late sees it, so the stale moment lasts as long as the
 * test needs.
 */
describe("a replica refuses nothing for good from a stale view of a session (S7, DESIGN §7)", function () {
  this.timeout(60_000);
  let server: NatsServerFixture;
  let lab: LabProcess;
  let prefix: string;
  const open: EngineReplica[] = [];

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    lab = await startLabProcess();
  });

  after(async () => {
    await lab?.close();
    await server?.stop();
  });

  beforeEach(() => {
    prefix = `t${randomBytes(6).toString("hex")}`;
  });

  afterEach(async () => {
    for (const replica of open.splice(0)) await replica.close();
  });

  /** A replica that has claimed and loaded the one partition, and believes it serves it. */
  async function replica(name: string): Promise<EngineReplica> {
    const made = await startEngineReplica({ name, natsUrl: server.url, labPort: lab.port, prefix });
    open.push(made);
    await made.take();
    return made;
  }

  const failure = (reply: Promise<unknown>): Promise<BridgeError | undefined> =>
    reply.then(
      () => undefined,
      (error: unknown) => error as BridgeError,
    );

  it("answers UNAVAILABLE, not OUT_OF_SEQUENCE, for the number after one the new owner accepted", async () => {
    const b = await replica("b");
    const started = await b.call("Start", { key: "seq", text: "" });
    for (let seq = 1; seq <= 4; seq++)
      await b.call("Do", { key: "seq", text: `d${seq}` }, { "sb-seq": String(seq) });

    // a takes the partition over (fencing b's store) and accepts 5, one-way, as a client
    // that goes to the other replica after a takeover does; b still holds the session at 5.
    const a = await replica("a");
    const five = await a.call("Fire", { key: "seq", text: "f5" }, { "sb-seq": "5" });
    expect(five.sessionId).to.equal(started.sessionId);

    // The client sends 6 only after 5 was acknowledged, and it reaches b.
    const refused = await failure(b.call("Do", { key: "seq", text: "d6" }, { "sb-seq": "6" }));
    expect(refused?.code, refused?.message).to.equal(Code.UNAVAILABLE);
    expect(refused?.reason).to.equal(Reason.PARTITION_MOVING);
    // b's store stopped writing the partition and asked for it to be loaded again.
    expect(b.lost).to.deep.equal([0]);

    // The retry that reaches the owner is accepted: nothing was refused for good.
    const six = await a.call("Do", { key: "seq", text: "d6" }, { "sb-seq": "6" });
    expect(six.sessionId).to.equal(started.sessionId);
    const log = lab.logOf(started.sessionId ?? "");
    expect(log.filter((l) => l.startsWith("Do:")).sort()).to.deep.equal([
      "Do:d1",
      "Do:d2",
      "Do:d3",
      "Do:d4",
      "Do:d6",
    ]);
  });

  it("answers UNAVAILABLE, not SESSION_NOT_FOUND, for a session the new owner started", async () => {
    const b = await replica("b");
    await b.call("Start", { key: "old", text: "" });
    const a = await replica("a");
    const fresh = await a.call("Start", { key: "new", text: "" });
    const refused = await failure(
      b.call("Do", { key: "new", text: "x" }, { "sb-session-id": fresh.sessionId ?? "" }),
    );
    expect(refused?.code, refused?.message).to.equal(Code.UNAVAILABLE);
    expect(refused?.reason).to.equal(Reason.PARTITION_MOVING);
    expect(b.lost).to.deep.equal([0]);
  });

  it("still refuses a real gap in the numbers for good while its view is current", async () => {
    const b = await replica("b");
    await b.call("Start", { key: "gap", text: "" });
    await b.call("Do", { key: "gap", text: "d1" }, { "sb-seq": "1" });
    const refused = await failure(b.call("Do", { key: "gap", text: "d3" }, { "sb-seq": "3" }));
    expect(refused?.code, refused?.message).to.equal(Code.FAILED_PRECONDITION);
    expect(refused?.reason).to.equal(Reason.OUT_OF_SEQUENCE);
    expect(refused?.metadata.expected_seq).to.equal("2");
    expect(b.lost).to.deep.equal([]);
  });
});
