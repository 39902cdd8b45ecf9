import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { failure, header, unaryCall } from "../support/grpc-call.js";
import {
  errorInfoOf,
  type LabHarness,
  reasonOf,
  STORE_KINDS,
  startLabHarness,
} from "../support/lab-harness.js";
import type { LabResult } from "../support/lab-process.js";
import { waitFor } from "../support/wait.js";

/** S7 (sequence numbers) and S8 (idempotency keys) through the bridge, against every store. */
for (const store of STORE_KINDS) {
  describe(`sequence numbers and idempotency keys (S7, S8), ${store} store`, () => {
    let h: LabHarness;
    before(async () => {
      h = await startLabHarness(store);
    });
    after(async () => {
      await h.close();
    });

    const deliveriesOf = (key: string) => h.lab.deliveries.filter((d) => d.key === key);

    it("S7: numbered messages count 1, 2, 3; the starter takes no number", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s7-a" });
      for (const seq of [1, 2, 3]) {
        const out = await unaryCall<LabResult>(
          h.clients.Counter,
          "Do",
          { key: "s7-a", text: String(seq) },
          { "sb-seq": String(seq) },
        );
        expect(out.response.seq).to.equal(String(seq));
      }
      const session = await h.sessions.getSession(deliveriesOf("s7-a")[0]?.sessionId ?? "");
      expect(session.nextSeq).to.equal(4);
    });

    it("S7: a duplicate number returns the recorded outcome without a second delivery", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s7-dup" });
      const first = await unaryCall<LabResult>(
        h.clients.Counter,
        "Do",
        { key: "s7-dup", text: "once" },
        { "sb-seq": "1" },
      );
      const count = deliveriesOf("s7-dup").length;
      const again = await unaryCall<LabResult>(
        h.clients.Counter,
        "Do",
        { key: "s7-dup", text: "once" },
        { "sb-seq": "1" },
      );
      expect(deliveriesOf("s7-dup").length).to.equal(count);
      expect(again.response).to.deep.equal(first.response);
      expect(header(again.headers, "sb-message-id")).to.equal(header(first.headers, "sb-message-id"));
    });

    it("S7: a gap is FAILED_PRECONDITION/OUT_OF_SEQUENCE with the expected number, and is not delivered", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s7-gap" });
      await unaryCall(h.clients.Counter, "Do", { key: "s7-gap" }, { "sb-seq": "1" });
      const count = deliveriesOf("s7-gap").length;
      const err = await failure(unaryCall(h.clients.Counter, "Do", { key: "s7-gap" }, { "sb-seq": "3" }));
      expect(err.code).to.equal(grpc.status.FAILED_PRECONDITION);
      expect(reasonOf(err)).to.equal("OUT_OF_SEQUENCE");
      expect(errorInfoOf(err).expected_seq).to.equal("2");
      expect(deliveriesOf("s7-gap").length).to.equal(count);
      // The expected number still works afterwards: nothing was consumed by the gap.
      await unaryCall(h.clients.Counter, "Do", { key: "s7-gap" }, { "sb-seq": "2" });
    });

    it("S7: pipelined numbered messages sent without waiting are all accepted, in order", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s7-pipe" });
      const outs = await Promise.all(
        Array.from({ length: 10 }, (_, i) =>
          unaryCall<LabResult>(
            h.clients.Counter,
            "Do",
            { key: "s7-pipe", text: String(i + 1) },
            { "sb-seq": String(i + 1) },
          ),
        ),
      );
      const log = outs.map((o) => o.response.log).sort((a, b) => b.length - a.length)[0];
      expect(log).to.deep.equal(["Start", ...Array.from({ length: 10 }, (_, i) => `Do:${i + 1}`)]);
    });

    it("S7: a starter carrying sb-seq is INVALID_ARGUMENT; malformed numbers too", async () => {
      const starter = await failure(
        unaryCall(h.clients.Counter, "Start", { key: "s7-start" }, { "sb-seq": "1" }),
      );
      expect(starter.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(reasonOf(starter)).to.equal("INVALID_SEQ");
      await unaryCall(h.clients.Counter, "Start", { key: "s7-bad" });
      for (const bad of ["0", "-1", "abc", "1.5"]) {
        const err = await failure(unaryCall(h.clients.Counter, "Do", { key: "s7-bad" }, { "sb-seq": bad }));
        expect(err.code, bad).to.equal(grpc.status.INVALID_ARGUMENT);
      }
    });

    it("S7: the recorded outcome of a duplicate can be a fault", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s7-fault" });
      const first = await failure(
        unaryCall(h.clients.Counter, "Do", { key: "s7-fault", fail_code: 9 }, { "sb-seq": "1" }),
      );
      const again = await failure(
        unaryCall(h.clients.Counter, "Do", { key: "s7-fault", fail_code: 9 }, { "sb-seq": "1" }),
      );
      expect(again.code).to.equal(first.code);
      expect(again.details).to.equal(first.details);
      expect(deliveriesOf("s7-fault").filter((d) => d.method === "Do")).to.have.length(1);
    });

    it("S8: a retried starter with the same key and payload gets the recorded outcome and the same session", async () => {
      const md = { "idempotency-key": "s8-start-key" };
      const first = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "s8-a" }, md);
      const again = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "s8-a" }, md);
      expect(again.response).to.deep.equal(first.response);
      expect(header(again.headers, "sb-session-id")).to.equal(header(first.headers, "sb-session-id"));
      expect(deliveriesOf("s8-a")).to.have.length(1);
    });

    it("S8: concurrent retries with one key are delivered once", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s8-b" });
      const md = { "idempotency-key": "s8-b-do" };
      const outs = await Promise.all(
        Array.from({ length: 5 }, () =>
          unaryCall<LabResult>(h.clients.Counter, "Do", { key: "s8-b", delay_ms: 50 }, md),
        ),
      );
      expect(new Set(outs.map((o) => o.response.message_id)).size).to.equal(1);
      expect(deliveriesOf("s8-b").filter((d) => d.method === "Do")).to.have.length(1);
    });

    it("S8: the same key with a different payload is rejected with IDEMPOTENCY_KEY_REUSED", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s8-c" });
      const md = { "idempotency-key": "s8-c-key" };
      await unaryCall(h.clients.Counter, "Do", { key: "s8-c", text: "one" }, md);
      const err = await failure(unaryCall(h.clients.Counter, "Do", { key: "s8-c", text: "two" }, md));
      expect(err.code).to.equal(grpc.status.FAILED_PRECONDITION);
      expect(reasonOf(err)).to.equal("IDEMPOTENCY_KEY_REUSED");
    });

    it("S8: keys are checked for form", async () => {
      const err = await failure(
        unaryCall(h.clients.Counter, "Start", { key: "s8-d" }, { "idempotency-key": "x".repeat(300) }),
      );
      expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(reasonOf(err)).to.equal("INVALID_IDEMPOTENCY_KEY");
    });

    it("S8: a one-way call retried with its key is acknowledged again and delivered once", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s8-e" });
      const md = { "idempotency-key": "s8-e-fire" };
      const first = await unaryCall(h.clients.Counter, "Fire", { key: "s8-e", text: "n" }, md);
      const again = await unaryCall(h.clients.Counter, "Fire", { key: "s8-e", text: "n" }, md);
      expect(header(again.headers, "sb-message-id")).to.equal(header(first.headers, "sb-message-id"));
      await waitFor(() => deliveriesOf("s8-e").some((d) => d.method === "Fire"));
      await new Promise((r) => setTimeout(r, 100));
      expect(deliveriesOf("s8-e").filter((d) => d.method === "Fire")).to.have.length(1);
    });
  });
}
