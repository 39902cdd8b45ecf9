import { randomBytes } from "node:crypto";
import { expect } from "chai";
import { createGrpcTransport } from "../../adapters/grpc/h2-outbound.js";
import type { UnaryReply } from "../../bridge/call/call.js";
import { type ClusterBridge, createClusterBridge } from "../../bridge/cluster/cluster-bridge.js";
import { createClusterPlacement } from "../../bridge/cluster/cluster-placement.js";
import { createPartitioning } from "../../bridge/cluster/partitions.js";
import { loadBridgeSetup } from "../../bridge/config/check-config.js";
import { createBridge } from "../../bridge/engine/bridge-engine.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { createJetStreamStore, type JetStreamSessionStore } from "../../bridge/store/jetstream-store.js";
import { LAB_CONFIG } from "../support/lab-harness.js";
import { type LabProcess, startLabProcess } from "../support/lab-process.js";
import { type NatsServerFixture, startNatsServer } from "../support/nats-server.js";

/** Op { key, text } on the wire, for calls made straight to the bridge. */
function op(key: string, text: string): Buffer {
  return Buffer.concat([
    Buffer.from([0x0a, key.length]),
    Buffer.from(key),
    Buffer.from([0x12, text.length]),
    Buffer.from(text),
  ]);
}

interface Replica {
  readonly bridge: ClusterBridge;
  readonly store: JetStreamSessionStore;
  /** Partitions the store stopped writing on its own (it asks for a reload). */
  readonly lost: number[];
  call(method: string, key: string, text: string, metadata?: Record<string, string>): Promise<UnaryReply>;
  close(): Promise<void>;
}

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
  const open: Replica[] = [];

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
  async function replica(name: string): Promise<Replica> {
    const setup = loadBridgeSetup({ file: LAB_CONFIG });
    const partitioning = createPartitioning(1);
    const lost: number[] = [];
    const store = await createJetStreamStore({
      servers: server.url,
      prefix,
      partitions: { count: 1, of: (id) => partitioning.ofSession(id), onLost: (p) => lost.push(p) },
    });
    const client = createGrpcTransport().connect({
      name: "lab",
      location: new URL(`grpc://127.0.0.1:${lab.port}`),
      envelope: false,
    });
    const engine = createBridge({
      contracts: setup.contracts,
      store,
      processes: new Map(setup.config.processes[0]?.services.map((s) => [s, client])),
      defaults: setup.config.defaults,
      placement: createClusterPlacement(partitioning, () => [0]),
    });
    await engine.start();
    await store.claimPartition(0);
    await engine.adopt(() => true);
    const nowhere = (): Promise<never> =>
      Promise.reject(new BridgeError(Code.UNAVAILABLE, Reason.PARTITION_MOVING, "no other replica"));
    const bridge = createClusterBridge({
      engine,
      partitioning,
      ownership: { serves: () => true, ownerOf: () => name, confirm: (p) => store.confirmPartition(p) },
      replica: name,
      forwarder: { unary: nowhere, close: nowhere },
      maxCorrelationValueBytes: setup.config.defaults.maxCorrelationValueBytes,
    });
    const made: Replica = {
      bridge,
      store,
      lost,
      call(method, key, text, metadata = {}) {
        const operation = setup.contracts.operations.get(`/test.lab.v1.Counter/${method}`);
        if (operation === undefined) throw new Error(method);
        return bridge.unary({
          operation,
          metadata: Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, [v]])),
          deadlineMs: undefined,
          signal: new AbortController().signal,
          principal: "anonymous",
          codec: "proto",
          payload: op(key, text),
        });
      },
      async close() {
        await bridge.close();
        await client.close();
      },
    };
    open.push(made);
    return made;
  }

  const failure = (reply: Promise<unknown>): Promise<BridgeError | undefined> =>
    reply.then(
      () => undefined,
      (error: unknown) => error as BridgeError,
    );

  it("answers UNAVAILABLE, not OUT_OF_SEQUENCE, for the number after one the new owner accepted", async () => {
    const b = await replica("b");
    const started = await b.call("Start", "seq", "");
    for (let seq = 1; seq <= 4; seq++) await b.call("Do", "seq", `d${seq}`, { "sb-seq": String(seq) });

    // a takes the partition over (fencing b's store) and accepts 5, one-way, as a client
    // that goes to the other replica after a takeover does; b still holds the session at 5.
    const a = await replica("a");
    const five = await a.call("Fire", "seq", "f5", { "sb-seq": "5" });
    expect(five.sessionId).to.equal(started.sessionId);

    // The client sends 6 only after 5 was acknowledged, and it reaches b.
    const refused = await failure(b.call("Do", "seq", "d6", { "sb-seq": "6" }));
    expect(refused?.code, refused?.message).to.equal(Code.UNAVAILABLE);
    expect(refused?.reason).to.equal(Reason.PARTITION_MOVING);
    // b's store stopped writing the partition and asked for it to be loaded again.
    expect(b.lost).to.deep.equal([0]);

    // The retry that reaches the owner is accepted: nothing was refused for good.
    const six = await a.call("Do", "seq", "d6", { "sb-seq": "6" });
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
    await b.call("Start", "old", "");
    const a = await replica("a");
    const fresh = await a.call("Start", "new", "");
    const refused = await failure(b.call("Do", "new", "x", { "sb-session-id": fresh.sessionId ?? "" }));
    expect(refused?.code, refused?.message).to.equal(Code.UNAVAILABLE);
    expect(refused?.reason).to.equal(Reason.PARTITION_MOVING);
    expect(b.lost).to.deep.equal([0]);
  });

  it("still refuses a real gap in the numbers for good while its view is current", async () => {
    const b = await replica("b");
    await b.call("Start", "gap", "");
    await b.call("Do", "gap", "d1", { "sb-seq": "1" });
    const refused = await failure(b.call("Do", "gap", "d3", { "sb-seq": "3" }));
    expect(refused?.code, refused?.message).to.equal(Code.FAILED_PRECONDITION);
    expect(refused?.reason).to.equal(Reason.OUT_OF_SEQUENCE);
    expect(refused?.metadata.expected_seq).to.equal("2");
    expect(b.lost).to.deep.equal([]);
  });
});
