import { expect } from "chai";
import { SessionState } from "../../sdk/gen/sessionbridge/v1/session.js";
import { expectFault } from "../support/lab-client.js";
import { ruleTargets, useLabHarness } from "../support/lab-harness.js";
import { waitForAccepted } from "../support/lab-journal.js";
import { waitFor } from "../support/wait.js";

/**
 * S6: turn-taking within a session and the three execution modalities, against every
 * store and client. Order and overlap are read from what the lab process observed (its
 * delivery order and overlap counts) while it holds calls, never from the clock.
 */
for (const target of ruleTargets()) {
  describe(`order and concurrency (S6), ${target.title}`, () => {
    const harness = useLabHarness(target);

    it("exclusive operations of a session are delivered one at a time, in arrival order", async () => {
      const h = harness();
      const start = await h.client.unary("Counter", "Start", { key: "s6-ex" });
      const id = start.sessionId ?? "";
      const gate = h.lab.hold("s6-ex", "Do");
      const calls = Array.from({ length: 6 }, (_, i) =>
        h.client.unary("Counter", "Do", { key: "s6-ex", text: String(i) }),
      );
      // All six are accepted (journaled) while the first is held in the process: arrival
      // order is the journal's order.
      const accepted = await waitForAccepted(h.client, id, "/test.lab.v1.Counter/Do", 6);
      await waitFor(() => h.lab.deliveries.some((d) => d.key === "s6-ex" && d.method === "Do"));
      expect(h.lab.deliveries.filter((d) => d.key === "s6-ex" && d.method === "Do")).to.have.length(1);
      gate.release();
      const outs = await Promise.all(calls);
      const delivered = h.lab.deliveries.filter((d) => d.key === "s6-ex" && d.method === "Do");
      expect(delivered.map((d) => d.messageId)).to.deep.equal(accepted.map((e) => e.envelope?.messageId));
      const texts = delivered.map((d) => `Do:${d.text}`);
      expect(outs.map((o) => o.response.log).sort((a, b) => b.length - a.length)[0]).to.deep.equal([
        "Start",
        ...texts,
      ]);
      expect(h.lab.overlapOf(id).exclusive).to.equal(1);
    });

    it("shared operations of a session run side by side", async () => {
      const h = harness();
      const start = await h.client.unary("Counter", "Start", { key: "s6-sh" });
      const gate = h.lab.hold("s6-sh", "Peek");
      const peeks = Array.from({ length: 4 }, () => h.client.unary("Counter", "Peek", { key: "s6-sh" }));
      // All four are in the process at once, none of them answered yet.
      await waitFor(
        () => h.lab.deliveries.filter((d) => d.key === "s6-sh" && d.method === "Peek").length === 4,
        10_000,
        "four Peeks delivered together",
      );
      gate.release();
      await Promise.all(peeks);
      expect(h.lab.overlapOf(start.sessionId ?? "").all).to.equal(4);
    });

    it("a shared operation never overtakes an exclusive one that arrived before it", async () => {
      const h = harness();
      const start = await h.client.unary("Counter", "Start", { key: "s6-mix" });
      const gate = h.lab.hold("s6-mix", "Do");
      const slow = h.client.unary("Counter", "Do", { key: "s6-mix", text: "slow" });
      await waitFor(() => h.lab.deliveries.some((d) => d.key === "s6-mix" && d.method === "Do"));
      const peek = h.client.unary("Counter", "Peek", { key: "s6-mix" });
      await waitForAccepted(h.client, start.sessionId ?? "", "/test.lab.v1.Counter/Peek", 1);
      expect(h.lab.deliveries.filter((d) => d.key === "s6-mix" && d.method === "Peek")).to.have.length(0);
      gate.release();
      await slow;
      // The read saw the write that arrived before it.
      expect((await peek).response.log).to.include("Do:slow");
    });

    it("different sessions of a CONCURRENT service run concurrently", async () => {
      const h = harness();
      await h.client.unary("Counter", "Start", { key: "s6-c1" });
      await h.client.unary("Counter", "Start", { key: "s6-c2" });
      const gates = [h.lab.hold("s6-c1", "Do"), h.lab.hold("s6-c2", "Do")];
      const calls = [
        h.client.unary("Counter", "Do", { key: "s6-c1", text: "x" }),
        h.client.unary("Counter", "Do", { key: "s6-c2", text: "y" }),
      ];
      // Both sessions' calls are in the process at the same time.
      await waitFor(
        () => h.lab.deliveries.filter((d) => d.method === "Do" && d.key.startsWith("s6-c")).length === 2,
        10_000,
        "both sessions delivered together",
      );
      for (const gate of gates) gate.release();
      await Promise.all(calls);
    });

    it("SEQUENTIAL: the next session runs only after the one before it ended, in starter order", async () => {
      const h = harness();
      const first = await h.client.unary("Line", "Begin", { text: "first" });
      const secondStarted = h.client.unary("Line", "Begin", { text: "second" });
      // The second session exists, paused behind the first: its starter waits, undelivered.
      await waitFor(async () => {
        const page = await h.client.sessions.list({ service: "test.lab.v1.Line", pageSize: 10 });
        return page.sessions.filter((s) => s.state === SessionState.SESSION_STATE_ACTIVE).length === 2;
      });
      expect(h.lab.deliveries.filter((d) => d.service === "Line" && d.text === "second")).to.have.length(0);
      // An uncorrelated non-starter reaches the session that is running now.
      const step = await h.client.unary("Line", "Step", { text: "step" });
      expect(step.response.session_id).to.equal(first.response.session_id);
      await h.client.unary("Line", "End", { text: "end" });
      const second = await secondStarted;
      expect(second.response.session_id).to.not.equal(first.response.session_id);
      // The second session's starter reached the process only after the first had ended.
      const line = h.lab.deliveries.filter((d) => d.service === "Line").map((d) => d.text);
      expect(line.indexOf("second")).to.be.greaterThan(line.indexOf("end"));
      await h.client.unary("Line", "End", {});
    });

    it("SINGLE: every message of the service reaches its one live session", async () => {
      const { client } = harness();
      const begin = await client.unary("Solo", "Begin", { text: "a" });
      const again = await client.unary("Solo", "Begin", { text: "b" });
      const step = await client.unary("Solo", "Step", { text: "c" });
      expect(again.response.session_id).to.equal(begin.response.session_id);
      expect(step.response.session_id).to.equal(begin.response.session_id);
      expect(step.sessionId).to.equal(begin.response.session_id);
      await client.sessions.close(begin.response.session_id);
      // With the single session closed, a non-starter reaches nothing.
      const err = await expectFault(client.unary("Solo", "Step", {}));
      expect(err.reason).to.equal("CORRELATION_ERROR");
    });
  });
}
