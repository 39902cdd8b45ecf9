import { expect } from "chai";
import type { ErrorDetail } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { decodeStatus, ERROR_INFO_TYPE_URL } from "../../bridge/errors/rich-status.js";
import { sessionDeadlineScenarios } from "../support/deadline-scenarios.js";
import { expectFault, headerOf } from "../support/lab-client.js";
import { labTargets, ruleTargets, useLabHarness } from "../support/lab-harness.js";
import { RICH_DETAILS } from "../support/lab-process.js";

const comparable = (details: readonly ErrorDetail[]) =>
  details.map((d) => ({ typeUrl: d.typeUrl, value: Buffer.from(d.value).toString("hex") }));

/** S14 (faults), S15 (metadata, trace context) and S13's sb-* overwrite, against every store and client. */
for (const target of ruleTargets()) {
  describe(`faults and metadata (S13, S14, S15), ${target.title}`, () => {
    const harness = useLabHarness(target);

    it("S14: a process's status passes through as it came (no details added); the session id comes back", async () => {
      const { client } = harness();
      const start = await client.unary("Counter", "Start", { key: "s14-a" });
      const err = await expectFault(
        client.unary("Counter", "Do", { key: "s14-a", fail_code: Code.PERMISSION_DENIED }),
      );
      expect(err.code).to.equal(Code.PERMISSION_DENIED);
      expect(err.message).to.equal("asked to fail with 7");
      // The process sent no details, so none arrive: the bridge adds no ErrorInfo of its own
      // to a process's status (its journal records the reason PROCESS_FAULT).
      expect(err.reason).to.equal(undefined);
      expect(err.sessionId).to.equal(start.response.session_id);
    });

    it("S14: the error details a process declared reach the client unchanged", async () => {
      const { client } = harness();
      await client.unary("Counter", "Start", { key: "s14-b" });
      const err = await expectFault(
        client.unary("Counter", "Do", { key: "s14-b", text: "rich", fail_code: 9 }),
      );
      expect(err.code).to.equal(Code.FAILED_PRECONDITION);
      expect(err.reason).to.equal("LAB_REASON");
      expect(err.errorMetadata).to.deep.equal({ where: "lab" });
      expect(comparable(err.details)).to.deep.equal(comparable(decodeStatus(RICH_DETAILS(9)).details));
    });

    it("S14: bridge faults carry a code and a machine-readable reason in google.rpc.ErrorInfo", async () => {
      const { client } = harness();
      const err = await expectFault(client.unary("Counter", "Do", { key: "s14-nobody" }));
      expect(err.code).to.equal(Code.NOT_FOUND);
      expect(err.details[0]?.typeUrl).to.equal(ERROR_INFO_TYPE_URL);
      expect(err.reason).to.equal("CORRELATION_ERROR");
    });

    it("S15: custom metadata and trace context propagate; S13: client sb-* values are overwritten", async () => {
      const { client } = harness();
      await client.unary("Counter", "Start", { key: "s15-d" });
      const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
      const out = await client.unary(
        "Counter",
        "Do",
        { key: "s15-d" },
        {
          metadata: {
            "x-tenant": "acme",
            traceparent,
            tracestate: "vendor=1",
            "sb-principal": "admin",
            "sb-message-id": "forged",
            "sb-custom": "dropped",
          },
        },
      );
      const md = out.response.metadata;
      expect(md["x-tenant"]).to.equal("acme");
      expect(md.traceparent).to.equal(traceparent);
      expect(md.tracestate).to.equal("vendor=1");
      expect(md["sb-principal"]).to.equal("anonymous");
      expect(md["sb-message-id"]).to.not.equal("forged");
      expect(md["sb-message-id"]).to.equal(out.messageId);
      expect(md).to.not.have.property("sb-custom");
      // The process's own headers and trailers come back to the client.
      expect(headerOf(out.headers, "x-lab-header")).to.equal("Do");
      expect(headerOf(out.trailers, "x-lab-trailer")).to.equal("done");
    });

    it("S15: binary metadata crosses the bridge byte for byte", async () => {
      const { client } = harness();
      await client.unary("Counter", "Start", { key: "s15-bin" });
      const bytes = Buffer.from([0, 1, 2, 0xfe, 0xff]);
      const out = await client.unary(
        "Counter",
        "Do",
        { key: "s15-bin" },
        { metadata: { "x-blob-bin": bytes.toString("base64") } },
      );
      expect(out.response.metadata["x-blob-bin"]).to.equal(bytes.toString("base64"));
    });

    it("S15: a call without trace context gets a fresh, valid one", async () => {
      const { client } = harness();
      await client.unary("Counter", "Start", { key: "s15-e" });
      const out = await client.unary(
        "Counter",
        "Do",
        { key: "s15-e" },
        { metadata: { traceparent: "garbage" } },
      );
      expect(out.response.traceparent).to.match(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    });

    it("S15: a stateless call carries its deadline through as remaining time", async () => {
      const { client } = harness();
      const out = await client.unary("Plain", "Echo", { text: "t" }, { timeoutMs: 5000 });
      const remaining = Number(out.response.deadline_ms);
      expect(remaining).to.be.greaterThan(0);
      expect(remaining).to.be.at.most(5000);
    });

    it("a service without session options passes calls through statelessly", async () => {
      const { client } = harness();
      const out = await client.unary("Plain", "Echo", { text: "hi" }, { metadata: { "x-a": "b" } });
      expect(out.response.text).to.equal("hi");
      expect(out.response.session_id).to.equal("");
      expect(out.response.metadata["x-a"]).to.equal("b");
      expect(out.sessionId).to.equal(undefined);
      const err = await expectFault(client.unary("Plain", "Echo", {}, { metadata: { "sb-seq": "1" } }));
      expect(err.code).to.equal(Code.INVALID_ARGUMENT);
      const fault = await expectFault(client.unary("Plain", "Echo", { fail_code: 5 }));
      expect(fault.code).to.equal(Code.NOT_FOUND);
      expect(fault.reason).to.equal(undefined);
    });
  });
}

/** S15 deadlines as grpc-js sets them; grpc-go's are in grpc-go-deadlines.spec.ts. */
for (const target of labTargets(["grpc-js"])) {
  describe(`deadlines set by grpc-js (S15), ${target.title}`, () => {
    sessionDeadlineScenarios(useLabHarness(target));
  });
}
