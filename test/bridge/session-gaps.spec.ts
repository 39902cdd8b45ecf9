import { expect } from "chai";
import { Code } from "../../bridge/errors/code.js";
import { expectFault, headerOf } from "../support/lab-client.js";
import { ruleTargets, useLabHarness } from "../support/lab-harness.js";

/**
 * Session facts on every path, through grpc-js and grpc-go alike: resume by id alone
 * (S1), both ids on faults and on replayed faults (S1, S7), and what a process sends
 * with a fault (S14, S15).
 */
for (const target of ruleTargets()) {
  describe(`session facts on every answer, ${target.title}`, () => {
    const h = useLabHarness(target);

    it("S1: a correlated non-starter reaches its session by sb-session-id alone, unary and streaming", async () => {
      const start = await h().client.unary("Counter", "Start", { key: "gap-by-id" });
      const sessionId = start.sessionId ?? "";
      const metadata = { "sb-session-id": sessionId };
      const unary = await h().client.unary("Counter", "Do", { text: "no key" }, { metadata });
      expect(unary.sessionId).to.equal(sessionId);
      expect(unary.response.session_id).to.equal(sessionId);
      // Every outbound streams, nats:// processes included (docs/nats.md "Streaming").
      const stream = await h().client.serverStream("Counter", "Watch", { count: 2 }, { metadata });
      expect(stream.sessionId).to.equal(sessionId);
      expect(stream.response.map((r) => r.session_id)).to.deep.equal([sessionId, sessionId]);
      // Values the request does carry must still be the session's.
      const wrong = await expectFault(
        h().client.unary("Counter", "Do", { key: "gap-someone-else" }, { metadata }),
      );
      expect(wrong.code).to.equal(Code.NOT_FOUND);
      expect(wrong.reason).to.equal("CORRELATION_ERROR");
    });

    it("S1, S7: a fault carries sb-session-id and sb-message-id; its replay carries the same ones", async () => {
      const start = await h().client.unary("Counter", "Start", { key: "gap-fault" });
      const first = await expectFault(
        h().client.unary(
          "Counter",
          "Do",
          { key: "gap-fault", fail_code: 9 },
          { metadata: { "sb-seq": "1" } },
        ),
      );
      expect(first.code).to.equal(Code.FAILED_PRECONDITION);
      expect(first.sessionId).to.equal(start.sessionId);
      expect(first.messageId).to.be.a("string").and.not.equal("");
      const again = await expectFault(
        h().client.unary(
          "Counter",
          "Do",
          { key: "gap-fault", fail_code: 9 },
          { metadata: { "sb-seq": "1" } },
        ),
      );
      expect(again.code).to.equal(Code.FAILED_PRECONDITION);
      expect(again.sessionId).to.equal(start.sessionId);
      expect(again.messageId).to.equal(first.messageId);
      expect(h().lab.deliveries.filter((d) => d.key === "gap-fault" && d.method === "Do")).to.have.length(1);
    });

    it("S14, S15: headers and trailers a process sends with its fault reach the caller", async () => {
      await h().client.unary("Counter", "Start", { key: "gap-meta" });
      const fault = await expectFault(
        h().client.unary("Counter", "Do", { key: "gap-meta", text: "fault-metadata", fail_code: 7 }),
      );
      expect(fault.code).to.equal(Code.PERMISSION_DENIED);
      expect(headerOf(fault.headers, "x-lab-fault-header")).to.equal("Do");
      expect(headerOf(fault.trailers, "x-lab-fault-trailer")).to.equal("failed");
    });
  });
}
