import { expect } from "chai";
import { Code } from "../../bridge/errors/code.js";
import { expectFault } from "./lab-client.js";
import type { LabHarness } from "./lab-harness.js";
import { waitFor } from "./wait.js";

/**
 * S15's deadline scenarios for calls in sessions, defined once and run by the suites of each client library:
 * every library encodes grpc-timeout its own way (grpc-go in microseconds or nanoseconds
 * for short deadlines), and the bridge must honour each.
 */
export function sessionDeadlineScenarios(harness: () => LabHarness): void {
  it("S15: the deadline reaches the process as remaining time", async () => {
    const { client } = harness();
    await client.unary("Counter", "Start", { key: "s15-a" });
    const out = await client.unary("Counter", "Do", { key: "s15-a" }, { timeoutMs: 5000 });
    const remaining = Number(out.response.deadline_ms);
    expect(remaining).to.be.greaterThan(0);
    expect(remaining).to.be.at.most(5000);
    const none = await client.unary("Counter", "Do", { key: "s15-a" });
    expect(none.response.deadline_ms).to.equal("-1");
  });

  it("S15: a deadline under 100 ms reaches the process", async () => {
    const { client } = harness();
    await client.unary("Counter", "Start", { key: "s15-short" });
    const out = await client.unary("Counter", "Do", { key: "s15-short" }, { timeoutMs: 90 });
    expect(Number(out.response.deadline_ms)).to.be.at.most(90);
  });

  it("S15: a call whose deadline passes while it waits its turn gets DEADLINE_EXCEEDED and is never delivered", async () => {
    const h = harness();
    await h.client.unary("Counter", "Start", { key: "s15-b" });
    const gate = h.lab.hold("s15-b", "Do");
    const busy = h.client.unary("Counter", "Do", { key: "s15-b", text: "busy" });
    try {
      await waitFor(() => h.lab.deliveries.some((d) => d.key === "s15-b" && d.text === "busy"));
      const err = await expectFault(
        h.client.unary("Counter", "Do", { key: "s15-b", text: "late" }, { timeoutMs: 100 }),
      );
      expect(err.code).to.equal(Code.DEADLINE_EXCEEDED);
    } finally {
      gate.release();
      await busy;
    }
    expect(h.lab.deliveries.filter((d) => d.key === "s15-b" && d.text === "late")).to.have.length(0);
  });

  it("S15: a process slower than the deadline yields DEADLINE_EXCEEDED", async () => {
    const h = harness();
    await h.client.unary("Counter", "Start", { key: "s15-c" });
    const gate = h.lab.hold("s15-c", "Do");
    try {
      const err = await expectFault(h.client.unary("Counter", "Do", { key: "s15-c" }, { timeoutMs: 150 }));
      expect(err.code).to.equal(Code.DEADLINE_EXCEEDED);
    } finally {
      gate.release();
    }
  });
}
