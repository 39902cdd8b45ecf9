import { randomBytes } from "node:crypto";
import { expect } from "chai";
import type { StreamEvent } from "../../bridge/call/call.js";
import type { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { type LabProcess, startLabProcess } from "../support/lab-process.js";
import { type NatsServerFixture, startNatsServer } from "../support/nats-server.js";
import { type EngineReplica, startEngineReplica } from "./engine-replica.js";

/**
 * A server stream forwarded to its session's owner (DESIGN §7) whose owner dies midway:
 * NATS gives the forwarding replica no sign of it, so the stream must end once the
 * owner's lease lapses in this replica's view, with the retryable UNAVAILABLE, and not
 * at the caller's deadline (this caller has none: it would wait a day).
 */
/**
 * One NATS server and lab process for a describe block, and two replicas on a fresh store
 * prefix per test: `a` owns the partition, `b` does not.
 */
function replicaPairs(): () => Promise<{ a: EngineReplica; b: EngineReplica }> {
  let server: NatsServerFixture;
  let lab: LabProcess;
  const open: EngineReplica[] = [];

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    lab = await startLabProcess();
  });

  after(async () => {
    for (const replica of open.splice(0)) await replica.close();
    await lab?.close();
    await server?.stop();
  });

  return async () => {
    const prefix = `t${randomBytes(6).toString("hex")}`;
    const a = await startEngineReplica({ name: "a", natsUrl: server.url, labPort: lab.port, prefix });
    open.push(a);
    const b = await startEngineReplica({ name: "b", natsUrl: server.url, labPort: lab.port, prefix });
    open.push(b);
    await a.take();
    return { a, b };
  };
}

describe("a forwarded stream whose owner dies midway (DESIGN §7)", function () {
  this.timeout(60_000);
  const pair = replicaPairs();

  it("ends with UNAVAILABLE (PARTITION_MOVING) once the owner's lease lapses", async () => {
    const { a, b } = await pair();
    b.view.owner = "a";
    const started = await a.call("Start", { key: "w" });

    // A long stream through b, served by a.
    const events = b
      .stream(
        "Watch",
        { key: "w", text: "t", count: 100, delayMs: 100 },
        { "sb-session-id": started.sessionId ?? "" },
      )
      [Symbol.asyncIterator]();
    const seen: StreamEvent[] = [];
    while (!seen.some((e) => e.type === "message")) {
      const next = await events.next();
      if (next.done === true) throw new Error("the stream ended before its first message");
      seen.push(next.value);
    }
    expect(seen[0]).to.deep.include({ type: "session", sessionId: started.sessionId });

    // a is killed: it stops sending; then b's lease table sees a's lease lapse.
    await a.vanish();
    b.view.owner = undefined;
    let failure: BridgeError | undefined;
    try {
      for (;;) {
        const next = await events.next();
        if (next.done === true) break;
      }
    } catch (error) {
      failure = error as BridgeError;
    }
    expect(failure?.code, failure?.message).to.equal(Code.UNAVAILABLE);
    expect(failure?.reason).to.equal(Reason.PARTITION_MOVING);
  });
});

/**
 * A server stream that names no session and is routed by the correlation values of its
 * one request (S1, S4) belongs to the partition those values hash to, like a unary call:
 * a replica that does not own it forwards it to the owner instead of serving it from a
 * store partition it does not write (DESIGN §7).
 */
describe("a stream found by its correlation values alone, on a replica that does not own it (DESIGN §7)", function () {
  this.timeout(60_000);
  const pair = replicaPairs();

  it("is forwarded to the owner and served there", async () => {
    const { a, b } = await pair();
    b.view.owner = "a";
    const started = await a.call("Start", { key: "c1" });

    const seen: StreamEvent[] = [];
    for await (const event of b.stream("Watch", { key: "c1", text: "t", count: 3 })) seen.push(event);
    expect(seen[0]).to.deep.include({ type: "session", sessionId: started.sessionId });
    expect(seen.filter((e) => e.type === "message")).to.have.length(3);
  });

  it("gets UNAVAILABLE (PARTITION_MOVING) while the partition has no serving owner", async () => {
    const { a, b } = await pair();
    await a.call("Start", { key: "c2" });
    b.view.owner = undefined;

    let failure: BridgeError | undefined;
    try {
      for await (const _ of b.stream("Watch", { key: "c2", text: "t", count: 3 })) {
        // a message here would mean b served a partition it does not own
      }
    } catch (error) {
      failure = error as BridgeError;
    }
    expect(failure?.code, failure?.message).to.equal(Code.UNAVAILABLE);
    expect(failure?.reason).to.equal(Reason.PARTITION_MOVING);
  });
});
