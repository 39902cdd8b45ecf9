import { expect } from "chai";
import { Code } from "../../bridge/errors/code.js";
import { expectFault, type LabCallOptions, type LabReply } from "../support/lab-client.js";
import { ruleTargets, useLabHarness } from "../support/lab-harness.js";
import type { LabResult } from "../support/lab-process.js";

/** S7 (sequence numbers) and S8 (idempotency keys) through the bridge, against every store and client. */
for (const target of ruleTargets()) {
  describe(`sequence numbers and idempotency keys (S7, S8), ${target.title}`, () => {
    const harness = useLabHarness(target);
    const deliveriesOf = (key: string) => harness().lab.deliveries.filter((d) => d.key === key);
    /** A Counter call with request metadata, as the old grpc-js helper took it. */
    const call = (
      method: string,
      request: object,
      metadata: Record<string, string> = {},
    ): Promise<LabReply<LabResult>> => {
      const options: LabCallOptions = { metadata };
      return harness().client.unary("Counter", method, request, options);
    };

    it("S7: numbered messages count 1, 2, 3; the starter takes no number", async () => {
      await call("Start", { key: "s7-a" });
      for (const seq of [1, 2, 3]) {
        const out = await call("Do", { key: "s7-a", text: String(seq) }, { "sb-seq": String(seq) });
        expect(out.response.seq).to.equal(String(seq));
      }
      const session = await harness().client.sessions.get(deliveriesOf("s7-a")[0]?.sessionId ?? "");
      expect(session.nextSeq).to.equal(4);
    });

    it("S7: a duplicate number returns the recorded outcome without a second delivery", async () => {
      await call("Start", { key: "s7-dup" });
      const first = await call("Do", { key: "s7-dup", text: "once" }, { "sb-seq": "1" });
      const count = deliveriesOf("s7-dup").length;
      const again = await call("Do", { key: "s7-dup", text: "once" }, { "sb-seq": "1" });
      expect(deliveriesOf("s7-dup").length).to.equal(count);
      expect(again.response).to.deep.equal(first.response);
      expect(again.messageId).to.equal(first.messageId);
    });

    it("S7: a gap is FAILED_PRECONDITION/OUT_OF_SEQUENCE with the expected number, and is not delivered", async () => {
      await call("Start", { key: "s7-gap" });
      await call("Do", { key: "s7-gap" }, { "sb-seq": "1" });
      const count = deliveriesOf("s7-gap").length;
      const err = await expectFault(call("Do", { key: "s7-gap" }, { "sb-seq": "3" }));
      expect(err.code).to.equal(Code.FAILED_PRECONDITION);
      expect(err.reason).to.equal("OUT_OF_SEQUENCE");
      expect(err.errorMetadata.expected_seq).to.equal("2");
      expect(deliveriesOf("s7-gap").length).to.equal(count);
      // The expected number still works afterwards: nothing was consumed by the gap.
      await call("Do", { key: "s7-gap" }, { "sb-seq": "2" });
    });

    it("S7: pipelined numbered messages sent without waiting are all accepted, in order", async () => {
      await call("Start", { key: "s7-pipe" });
      const outs = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          call("Do", { key: "s7-pipe", text: String(i + 1) }, { "sb-seq": String(i + 1) }),
        ),
      );
      const log = outs.map((o) => o.response.log).sort((a, b) => b.length - a.length)[0];
      expect(log).to.deep.equal(["Start", ...Array.from({ length: 10 }, (_, i) => `Do:${i + 1}`)]);
    });

    it("S7: a starter carrying sb-seq is INVALID_ARGUMENT; malformed numbers too", async () => {
      const starter = await expectFault(call("Start", { key: "s7-start" }, { "sb-seq": "1" }));
      expect(starter.code).to.equal(Code.INVALID_ARGUMENT);
      expect(starter.reason).to.equal("INVALID_SEQ");
      await call("Start", { key: "s7-bad" });
      for (const bad of ["0", "-1", "abc", "1.5"]) {
        const err = await expectFault(call("Do", { key: "s7-bad" }, { "sb-seq": bad }));
        expect(err.code, bad).to.equal(Code.INVALID_ARGUMENT);
      }
    });

    it("S7: the recorded outcome of a duplicate can be a fault", async () => {
      await call("Start", { key: "s7-fault" });
      const first = await expectFault(call("Do", { key: "s7-fault", fail_code: 9 }, { "sb-seq": "1" }));
      const again = await expectFault(call("Do", { key: "s7-fault", fail_code: 9 }, { "sb-seq": "1" }));
      expect(again.code).to.equal(first.code);
      expect(again.message).to.equal(first.message);
      expect(deliveriesOf("s7-fault").filter((d) => d.method === "Do")).to.have.length(1);
    });

    it("S8: a retried starter with the same key and payload gets the recorded outcome and the same session", async () => {
      const md = { "idempotency-key": "s8-start-key" };
      const first = await call("Start", { key: "s8-a" }, md);
      const again = await call("Start", { key: "s8-a" }, md);
      expect(again.response).to.deep.equal(first.response);
      expect(again.sessionId).to.equal(first.sessionId);
      expect(deliveriesOf("s8-a")).to.have.length(1);
    });

    it("S8: concurrent retries with one key are delivered once", async () => {
      await call("Start", { key: "s8-b" });
      const md = { "idempotency-key": "s8-b-do" };
      const outs = await Promise.all(
        Array.from({ length: 5 }, () => call("Do", { key: "s8-b", delay_ms: 50 }, md)),
      );
      expect(new Set(outs.map((o) => o.response.message_id)).size).to.equal(1);
      expect(deliveriesOf("s8-b").filter((d) => d.method === "Do")).to.have.length(1);
    });

    it("S8: the same key with a different payload is rejected with IDEMPOTENCY_KEY_REUSED", async () => {
      await call("Start", { key: "s8-c" });
      const md = { "idempotency-key": "s8-c-key" };
      await call("Do", { key: "s8-c", text: "one" }, md);
      const err = await expectFault(call("Do", { key: "s8-c", text: "two" }, md));
      expect(err.code).to.equal(Code.FAILED_PRECONDITION);
      expect(err.reason).to.equal("IDEMPOTENCY_KEY_REUSED");
    });

    it("S8: keys are checked for form", async () => {
      const err = await expectFault(call("Start", { key: "s8-d" }, { "idempotency-key": "x".repeat(300) }));
      expect(err.code).to.equal(Code.INVALID_ARGUMENT);
      expect(err.reason).to.equal("INVALID_IDEMPOTENCY_KEY");
    });

    it("S8: a one-way call retried with its key is acknowledged again and delivered once", async () => {
      await call("Start", { key: "s8-e" });
      const md = { "idempotency-key": "s8-e-fire" };
      const first = await call("Fire", { key: "s8-e", text: "n" }, md);
      const again = await call("Fire", { key: "s8-e", text: "n" }, md);
      expect(again.messageId).to.equal(first.messageId);
      // One-way messages reach the process in order with the calls after them (S6/S9): once
      // this call is answered, a second delivery of the note would already have happened.
      const after = await call("Do", { key: "s8-e", text: "after" });
      expect(after.response.log).to.deep.equal(["Start", "Fire:n", "Do:after"]);
      expect(deliveriesOf("s8-e").filter((d) => d.method === "Fire")).to.have.length(1);
    });
  });
}
