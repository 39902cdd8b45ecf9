import { randomBytes } from "node:crypto";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { expect } from "chai";
import { PartitionLeases } from "../../bridge/cluster/partition-leases.js";
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
  ): Promise<{ leases: PartitionLeases; nc: NatsConnection }> {
    const nc = await connect({ servers: server.url });
    connections.push(nc);
    everyone.push(serving);
    const leases = new PartitionLeases({
      connection: nc,
      prefix,
      replica: name,
      partitions: 8,
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
});
