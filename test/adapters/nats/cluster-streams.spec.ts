import { randomBytes } from "node:crypto";
import { expect } from "chai";
import type { BridgeConfig } from "../../../bridge/config/config.js";
import { Code } from "../../../bridge/errors/code.js";
import { createGrpcJsTransport } from "../../support/grpc-js-transport.js";
import {
  createLabClient,
  expectFault,
  headerOf,
  type LabClient,
  LabFault,
} from "../../support/lab-client.js";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";
import { type LabResult, RICH_DETAIL } from "../../support/lab-process.js";
import { type NatsServerFixture, startNatsServer } from "../../support/nats-server.js";
import { startNatsLabTransport } from "../../support/nats-transport.js";
import { waitFor } from "../../support/wait.js";

/**
 * Streams forwarded between replicas (DESIGN §7, docs/nats.md "Streaming"): two bridge
 * replicas share a JetStream store; a server stream that reaches the replica not owning
 * its session's partition is served by the owner, with the caller's deadline, metadata
 * and principal, and the owner's messages, trailers and faults come back unchanged.
 */
describe("server streams forwarded to the owner replica over NATS", function () {
  this.timeout(120_000);
  let server: NatsServerFixture;
  const replicas: LabHarness[] = [];
  const clients = new Map<string, LabClient>();
  const storePrefix = `fs${randomBytes(4).toString("hex")}`;

  const replicaConfig =
    (url: string, name: string) =>
    (config: BridgeConfig): BridgeConfig => ({
      ...config,
      listeners: {
        ...config.listeners,
        nats: {
          url,
          prefix: `in-${name}`,
          queue: `in-${name}`,
          token: undefined,
          user: undefined,
          password: undefined,
          credsFile: undefined,
          nkeyFile: undefined,
          tls: undefined,
          intake: [],
        },
      },
      store: { kind: "jetstream", prefix: storePrefix, url: undefined, replicas: 1 },
      cluster: { replica: name, partitions: 4, leaseTtlMs: 3_000 },
    });

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    for (const name of ["a", "b"]) {
      const harness = await startLabHarness("memory", { adjust: replicaConfig(server.url, name) });
      replicas.push(harness);
      clients.set(`${name}/grpc`, createLabClient(createGrpcJsTransport(harness.address)));
      clients.set(
        `${name}/nats`,
        createLabClient(
          await startNatsLabTransport({
            url: server.url,
            prefix: `in-${name}`,
            fallback: createGrpcJsTransport(harness.address),
          }),
        ),
      );
    }
  });

  after(async () => {
    for (const client of clients.values()) await client.close();
    for (const harness of replicas) await harness.close();
    await server?.stop();
  });

  const client = (name: string): LabClient => {
    const found = clients.get(name);
    if (found === undefined) throw new Error(`no client ${name}`);
    return found;
  };

  /**
   * A session, and which replica owns it: the one whose process got its unary call. Retries
   * while partitions move between the replicas (UNAVAILABLE, PARTITION_MOVING).
   */
  async function ownedSession(key: string): Promise<{ sessionId: string; owner: 0 | 1 }> {
    let sessionId = "";
    await waitFor(
      async () => {
        try {
          sessionId = (await client("a/grpc").unary("Counter", "Start", { key })).sessionId ?? "";
          return true;
        } catch (error) {
          if (error instanceof LabFault && error.code === Code.UNAVAILABLE) return false;
          throw error;
        }
      },
      60_000,
      "a session started",
    );
    // Wait until the lease table is settled enough that both replicas agree on the owner.
    let owner: 0 | 1 = 0;
    await waitFor(
      async () => {
        const before = replicas.map((r) => r.lab.deliveries.filter((d) => d.key === key).length);
        try {
          await client("b/grpc").unary(
            "Counter",
            "Do",
            { key, text: "where" },
            { metadata: { "sb-session-id": sessionId } },
          );
          await client("a/grpc").unary(
            "Counter",
            "Do",
            { key, text: "where" },
            { metadata: { "sb-session-id": sessionId } },
          );
        } catch (error) {
          if (error instanceof LabFault && error.code === Code.UNAVAILABLE) return false;
          throw error;
        }
        const after = replicas.map((r) => r.lab.deliveries.filter((d) => d.key === key).length);
        const grew = after.map((n, i) => n - (before[i] ?? 0));
        if (grew[0] === 2 && grew[1] === 0) owner = 0;
        else if (grew[0] === 0 && grew[1] === 2) owner = 1;
        else return false;
        return true;
      },
      60_000,
      "one owner serves the session",
    );
    return { sessionId, owner };
  }

  for (const via of ["grpc", "nats"] as const) {
    it(`a stream at the non-owner (${via} client) is served by the owner with deadline, metadata and principal`, async () => {
      const key = `fwd-${via}`;
      const { sessionId, owner } = await ownedSession(key);
      const other = owner === 0 ? "b" : "a";
      const notOwner = replicas[owner === 0 ? 1 : 0] as LabHarness;
      const out = await client(`${other}/${via}`).serverStream<LabResult>(
        "Counter",
        "Watch",
        { key, text: "f", count: 100 },
        { metadata: { "sb-session-id": sessionId, "x-forwarded-note": "kept" }, timeoutMs: 20_000 },
      );
      expect(out.response.map((m) => m.text)).to.deep.equal(
        Array.from({ length: 100 }, (_, i) => `f#${i + 1}`),
      );
      expect(out.sessionId).to.equal(sessionId);
      expect(out.messageId).to.match(/^[A-Za-z0-9_-]+$/);
      expect(headerOf(out.trailers, "x-lab-trailer")).to.equal("watched");
      const first = out.response[0];
      expect(first?.session_id).to.equal(sessionId);
      expect(first?.principal).to.equal("anonymous");
      expect(first?.metadata["x-forwarded-note"]).to.equal("kept");
      expect(Number(first?.deadline_ms)).to.be.within(1, 20_000);
      // Served by the owner's process, never by the process behind the replica it reached.
      const served = replicas[owner] as LabHarness;
      expect(served.lab.deliveries.some((d) => d.key === key && d.method === "Watch")).to.equal(true);
      expect(notOwner.lab.deliveries.some((d) => d.key === key && d.method === "Watch")).to.equal(false);
    });
  }

  it("a fault of the owner's process reaches the caller at the non-owner with its exact code, reason and details (S14)", async () => {
    const key = "fwd-fault";
    const { sessionId, owner } = await ownedSession(key);
    const other = owner === 0 ? "b" : "a";
    for (const via of ["grpc", "nats"]) {
      const fault = await expectFault(
        client(`${other}/${via}`).serverStream(
          "Counter",
          "Watch",
          { key, text: "rich", count: 1, fail_code: Code.FAILED_PRECONDITION },
          { metadata: { "sb-session-id": sessionId } },
        ),
      );
      expect(fault.code, via).to.equal(Code.FAILED_PRECONDITION);
      expect(fault.reason, via).to.equal("LAB_REASON");
      expect(fault.errorMetadata.where, via).to.equal("lab");
      const detail = fault.details.find((d) => d.typeUrl === RICH_DETAIL.typeUrl);
      expect(detail === undefined ? undefined : [...detail.value], via).to.deep.equal([...RICH_DETAIL.value]);
      expect(fault.sessionId, via).to.equal(sessionId);
    }
  });

  it("a caller at the non-owner that cancels cancels the owner's stream and the session's turn comes back", async () => {
    const key = "fwd-cancel";
    const { sessionId, owner } = await ownedSession(key);
    const other = owner === 0 ? "b" : "a";
    const served = replicas[owner] as LabHarness;
    const cancel = new AbortController();
    const watching = expectFault(
      client(`${other}/grpc`).serverStream(
        "Counter",
        "Watch",
        { key, count: 1000, delay_ms: 20 },
        { metadata: { "sb-session-id": sessionId }, signal: cancel.signal },
      ),
    );
    await waitFor(() => served.lab.deliveries.some((d) => d.key === key && d.method === "Watch"));
    cancel.abort();
    expect((await watching).code).to.equal(Code.CANCELLED);
    const next = await client(`${other}/grpc`).unary<LabResult>(
      "Counter",
      "Do",
      { key, text: "after" },
      { metadata: { "sb-session-id": sessionId }, timeoutMs: 20_000 },
    );
    expect(next.response.log).to.include("Do:after");
  });
});
