import { randomBytes } from "node:crypto";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { expect } from "chai";
import { PartitionLeases } from "../../bridge/cluster/partition-leases.js";
import { createJetStreamStore, type JetStreamSessionStore } from "../../bridge/store/jetstream-store.js";
import { entry, session } from "../bridge/store/store-records.js";
import { type NatsServerFixture, startNatsServer } from "../support/nats-server.js";
import { waitFor } from "../support/wait.js";

/**
 * Partition leases on a real nats-server (DESIGN §7): replicas split the partitions
 * fairly, a replica that stops hands its leases back, one that dies loses them once they
 * lapse, and a partition is served by one replica at a time.
 */
describe("partition leases in JetStream KV", function () {
  this.timeout(60_000);
  let server: NatsServerFixture;
  const connections: NatsConnection[] = [];
  const running: PartitionLeases[] = [];
  let prefix: string;
  /** Every replica's served partitions, to catch two serving one partition at once. */
  const everyone: Set<number>[] = [];
  let overlaps = 0;

  before(async () => {
    server = await startNatsServer({ jetstream: true });
  });

  after(async () => {
    for (const leases of running.splice(0)) await leases.stop();
    for (const nc of connections.splice(0)) await nc.close();
    await server?.stop();
  });

  beforeEach(() => {
    prefix = `t${randomBytes(6).toString("hex")}`;
  });

  afterEach(async () => {
    for (const leases of running.splice(0)) await leases.stop();
    everyone.length = 0;
    expect(overlaps, "partitions served by two replicas at once").to.equal(0);
  });

  /** A replica's leases; `serving` is what its onAcquired/onLost say it serves. */
  async function replica(
    name: string,
    serving: Set<number>,
    leaseTtlMs = 1000,
    partitions = 8,
  ): Promise<{ leases: PartitionLeases; nc: NatsConnection }> {
    const nc = await connect({ servers: server.url });
    connections.push(nc);
    everyone.push(serving);
    const leases = new PartitionLeases({
      connection: nc,
      prefix,
      replica: name,
      partitions,
      leaseTtlMs,
      replicas: 1,
      async onAcquired(partitions) {
        for (const p of partitions) {
          if (everyone.some((other) => other !== serving && other.has(p))) overlaps++;
          serving.add(p);
        }
      },
      onLost: (p) => serving.delete(p),
      beforeRelease: async () => undefined,
    });
    running.push(leases);
    await leases.start();
    return { leases, nc };
  }

  it("splits the partitions between two replicas, never both serving one", async () => {
    const a = new Set<number>();
    const b = new Set<number>();
    await replica("a", a);
    await waitFor(() => a.size === 8, 10_000, "a serves every partition alone");
    await replica("b", b);
    await waitFor(() => a.size === 4 && b.size === 4, 20_000, "four partitions each");
    for (const p of a) expect(b.has(p), `partition ${p} served twice`).to.equal(false);
  });

  it("gives a stopped replica's partitions to the other at once, and a dead one's after the TTL", async () => {
    const a = new Set<number>();
    const b = new Set<number>();
    const c = new Set<number>();
    const { leases: leasesA } = await replica("a", a, 1500);
    await waitFor(() => a.size === 8, 10_000, "a serves every partition");
    const { nc: connectionB } = await replica("b", b, 1500);
    await waitFor(() => a.size === 4 && b.size === 4, 20_000, "four each");
    await leasesA.stop();
    expect(a.size, "a serves nothing once stopped").to.equal(0);
    await waitFor(() => b.size === 8, 10_000, "b takes a's partitions");

    // A replica that dies renews nothing: its leases lapse and the other takes them.
    await replica("c", c, 1500);
    await waitFor(() => b.size === 4 && c.size === 4, 20_000, "b and c four each");
    // Stands for a crash: b's connection goes away without handing anything back.
    await connectionB.close();
    await waitFor(() => c.size === 8, 20_000, "c takes b's lapsed partitions");
  });

  it("still takes a dead replica's partitions after the store made it load one of its own again", async () => {
    const a = new Set<number>();
    const b = new Set<number>();
    const { leases: leasesA } = await replica("a", a);
    await waitFor(() => a.size === 8, 10_000, "a serves every partition");
    const { nc: connectionB } = await replica("b", b);
    await waitFor(() => a.size === 4 && b.size === 4, 20_000, "four each");
    // What the store's onLost does when a commit fails (NATS timed out, a stale journal):
    // the partition is loaded again while its lease is kept.
    const [mine] = [...a];
    leasesA.reload(mine ?? 0);
    await waitFor(() => leasesA.serves(mine ?? 0), 10_000, "a serves the reloaded partition again");
    // b dies: its leases lapse, and a, now the only replica, must take all of them. A reload
    // used to leave lease work marked as running for ever, so a never balanced again and
    // b's partitions stayed without a serving owner.
    await connectionB.close();
    await waitFor(() => a.size === 8, 20_000, "a takes b's lapsed partitions");
  });

  it("loads again a partition the store stopped writing while it was being loaded", async () => {
    // Sessions "p<n>-…" are in partition n; the leases and a real JetStream store together,
    // wired as the replica runtime wires them (cli/cluster-runtime.ts).
    const of = (sessionId: string): number => Number(/^p(\d+)-/.exec(sessionId)?.[1] ?? 0);
    const nc = await connect({ servers: server.url });
    connections.push(nc);
    let leases: PartitionLeases | undefined;
    const store: JetStreamSessionStore = await createJetStreamStore({
      connection: nc,
      prefix,
      partitions: { count: 1, of, onLost: (p) => leases?.reload(p) },
    });
    try {
      let loads = 0;
      leases = new PartitionLeases({
        connection: nc,
        prefix,
        replica: "a",
        partitions: 1,
        leaseTtlMs: 1000,
        replicas: 1,
        async onAcquired(partitions) {
          for (const p of partitions) await store.claimPartition(p);
          loads++;
          if (loads === 1) {
            // While the first load recovers the partition's sessions, one of their commits
            // fails for another reason than S5 (here a journal that does not continue where
            // the writer thinks): the store stops writing the partition and asks for a reload.
            const refused = await store
              .commit({ sessions: [session("p0-a", { journalLength: 2 })], entries: [entry("p0-a", 2)] })
              .then(
                () => undefined,
                (error: unknown) => error,
              );
            expect(refused, "the gapped commit is refused").to.be.instanceOf(Error);
          }
        },
        onLost: (p) => store.releasePartition(p),
        beforeRelease: async () => undefined,
      });
      running.push(leases);
      await leases.start();
      await waitFor(() => leases?.serves(0) === true, 10_000, "partition 0 served");
      // Served means written: the load that lost the partition must not end in serving it.
      // Before, it did, and every commit there got PARTITION_MOVING for as long as the lease
      // was renewed.
      const committed = store.commit({
        sessions: [session("p0-a", { journalLength: 1 })],
        entries: [entry("p0-a", 1)],
      });
      let outcome: unknown;
      await committed.then(
        () => undefined,
        (error: unknown) => {
          outcome = error;
        },
      );
      expect(outcome, "a commit in the served partition").to.equal(undefined);
      expect(loads, "loaded again after the loss").to.equal(2);
    } finally {
      await leases?.stop();
      await store.close();
    }
  });
});
