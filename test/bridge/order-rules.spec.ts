import { expect } from "chai";
import { failure, header, unaryCall } from "../support/grpc-call.js";
import { type LabHarness, reasonOf, STORE_KINDS, startLabHarness } from "../support/lab-harness.js";
import type { LabResult } from "../support/lab-process.js";

/** S6: turn-taking within a session and the three execution modalities, against every store. */
for (const store of STORE_KINDS) {
  describe(`order and concurrency (S6), ${store} store`, () => {
    let h: LabHarness;
    before(async () => {
      h = await startLabHarness(store);
    });
    after(async () => {
      await h.close();
    });

    it("exclusive operations of a session are delivered one at a time, in arrival order", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s6-ex" });
      const calls: Promise<unknown>[] = [];
      for (let i = 0; i < 6; i++) {
        calls.push(unaryCall(h.clients.Counter, "Do", { key: "s6-ex", text: String(i), delay_ms: 30 }));
        // Give each call time to arrive before the next, so arrival order is known.
        await new Promise((r) => setTimeout(r, 5));
      }
      const outs = (await Promise.all(calls)) as { response: LabResult }[];
      const last = outs.at(-1)?.response;
      expect(last?.log).to.deep.equal(["Start", "Do:0", "Do:1", "Do:2", "Do:3", "Do:4", "Do:5"]);
      expect(h.lab.maxExclusiveOverlap).to.equal(1);
    });

    it("shared operations of a session run side by side", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s6-sh" });
      const before = Date.now();
      await Promise.all(
        Array.from({ length: 4 }, () =>
          unaryCall(h.clients.Counter, "Peek", { key: "s6-sh", delay_ms: 300 }),
        ),
      );
      const peeks = h.lab.deliveries.filter((d) => d.key === "s6-sh" && d.method === "Peek");
      expect(peeks).to.have.length(4);
      // All four were delivered before the first could have finished.
      const spread = Math.max(...peeks.map((d) => d.atMs)) - Math.min(...peeks.map((d) => d.atMs));
      expect(spread).to.be.lessThan(300);
      expect(h.lab.maxOverlap).to.be.greaterThan(1);
      expect(Date.now() - before).to.be.greaterThanOrEqual(300);
    });

    it("a shared operation never overtakes an exclusive one that arrived before it", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s6-mix" });
      const slow = unaryCall(h.clients.Counter, "Do", { key: "s6-mix", text: "slow", delay_ms: 200 });
      await new Promise((r) => setTimeout(r, 20));
      const peek = await unaryCall<LabResult>(h.clients.Counter, "Peek", { key: "s6-mix" });
      await slow;
      // The read saw the write that arrived before it.
      expect(peek.response.log).to.include("Do:slow");
    });

    it("different sessions of a CONCURRENT service run concurrently", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s6-c1" });
      await unaryCall(h.clients.Counter, "Start", { key: "s6-c2" });
      await Promise.all([
        unaryCall(h.clients.Counter, "Do", { key: "s6-c1", text: "x", delay_ms: 250 }),
        unaryCall(h.clients.Counter, "Do", { key: "s6-c2", text: "y", delay_ms: 250 }),
      ]);
      const [x, y] = ["x", "y"].map((t) =>
        h.lab.deliveries.find((d) => d.method === "Do" && d.text === t && d.key.startsWith("s6-c")),
      );
      expect(Math.abs((x?.atMs ?? 0) - (y?.atMs ?? 1e12))).to.be.lessThan(200);
    });

    it("SEQUENTIAL: the next session runs only after the one before it ended, in starter order", async () => {
      const first = await unaryCall<LabResult>(h.clients.Line, "Begin", { text: "first" });
      const secondStarted = unaryCall<LabResult>(h.clients.Line, "Begin", { text: "second" });
      await new Promise((r) => setTimeout(r, 100));
      // The second session's starter waits: only the first session's message was delivered.
      expect(h.lab.deliveries.filter((d) => d.service === "Line" && d.text === "second")).to.have.length(0);
      // An uncorrelated non-starter reaches the session that is running now.
      const step = await unaryCall<LabResult>(h.clients.Line, "Step", { text: "step" });
      expect(step.response.session_id).to.equal(first.response.session_id);
      await unaryCall(h.clients.Line, "End", { text: "end" });
      const second = await secondStarted;
      expect(second.response.session_id).to.not.equal(first.response.session_id);
      const ended = h.lab.deliveries.find((d) => d.service === "Line" && d.text === "end");
      const began = h.lab.deliveries.find((d) => d.service === "Line" && d.text === "second");
      expect(began?.atMs).to.be.greaterThanOrEqual(ended?.atMs ?? Number.POSITIVE_INFINITY);
      await unaryCall(h.clients.Line, "End", {});
    });

    it("SINGLE: every message of the service reaches its one live session", async () => {
      const begin = await unaryCall<LabResult>(h.clients.Solo, "Begin", { text: "a" });
      const again = await unaryCall<LabResult>(h.clients.Solo, "Begin", { text: "b" });
      const step = await unaryCall<LabResult>(h.clients.Solo, "Step", { text: "c" });
      expect(again.response.session_id).to.equal(begin.response.session_id);
      expect(step.response.session_id).to.equal(begin.response.session_id);
      expect(header(step.headers, "sb-session-id")).to.equal(begin.response.session_id);
      await h.sessions.closeSession(begin.response.session_id);
      // With the single session closed, a non-starter reaches nothing.
      const err = await failure(unaryCall(h.clients.Solo, "Step", {}));
      expect(reasonOf(err)).to.equal("CORRELATION_ERROR");
    });
  });
}
