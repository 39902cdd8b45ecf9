import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { decodeStatus } from "../../bridge/errors/rich-status.js";
import { failure, header, unaryCall } from "../support/grpc-call.js";
import {
  errorInfoOf,
  type LabHarness,
  reasonOf,
  STORE_KINDS,
  startLabHarness,
} from "../support/lab-harness.js";
import { type LabResult, RICH_DETAILS } from "../support/lab-process.js";

/** S14 (faults), S15 (deadlines, metadata, trace context) and S13's sb-* overwrite, against every store. */
for (const store of STORE_KINDS) {
  describe(`faults, deadlines and metadata (S13, S14, S15), ${store} store`, () => {
    let h: LabHarness;
    before(async () => {
      h = await startLabHarness(store);
    });
    after(async () => {
      await h.close();
    });

    it("S14: a process's status code passes through with a reason; the session id comes back", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "s14-a" });
      const err = await failure(
        unaryCall(h.clients.Counter, "Do", { key: "s14-a", fail_code: grpc.status.PERMISSION_DENIED }),
      );
      expect(err.code).to.equal(grpc.status.PERMISSION_DENIED);
      expect(err.details).to.equal("asked to fail with 7");
      expect(reasonOf(err)).to.equal("PROCESS_FAULT");
      expect(header(err.metadata, "sb-session-id")).to.equal(start.response.session_id);
    });

    it("S14: the error details a process declared reach the client unchanged", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s14-b" });
      const err = await failure(
        unaryCall(h.clients.Counter, "Do", { key: "s14-b", text: "rich", fail_code: 9 }),
      );
      expect(err.code).to.equal(9);
      expect(reasonOf(err)).to.equal("LAB_REASON");
      expect(errorInfoOf(err)).to.deep.equal({ where: "lab" });
      const raw = err.metadata.get("grpc-status-details-bin")[0] as Buffer;
      expect(decodeStatus(raw).details).to.deep.equal(decodeStatus(RICH_DETAILS(9)).details);
    });

    it("S14: bridge faults carry a code and a machine-readable reason in google.rpc.ErrorInfo", async () => {
      const err = await failure(unaryCall(h.clients.Counter, "Do", { key: "s14-nobody" }));
      const raw = err.metadata.get("grpc-status-details-bin")[0] as Buffer;
      const status = decodeStatus(raw);
      expect(status.code).to.equal(grpc.status.NOT_FOUND);
      expect(status.details[0]?.typeUrl).to.equal("type.googleapis.com/google.rpc.ErrorInfo");
      expect(reasonOf(err)).to.equal("CORRELATION_ERROR");
    });

    it("S15: the deadline reaches the process as remaining time", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s15-a" });
      const out = await unaryCall<LabResult>(
        h.clients.Counter,
        "Do",
        { key: "s15-a" },
        {},
        { deadline: Date.now() + 5000 },
      );
      const remaining = Number(out.response.deadline_ms);
      expect(remaining).to.be.greaterThan(3000);
      expect(remaining).to.be.at.most(5000);
      const none = await unaryCall<LabResult>(h.clients.Counter, "Do", { key: "s15-a" });
      expect(none.response.deadline_ms).to.equal("-1");
    });

    it("S15: a call whose deadline passes while it waits its turn gets DEADLINE_EXCEEDED and is never delivered", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s15-b" });
      const busy = unaryCall(h.clients.Counter, "Do", { key: "s15-b", delay_ms: 400 });
      await new Promise((r) => setTimeout(r, 20));
      const err = await failure(
        unaryCall(
          h.clients.Counter,
          "Do",
          { key: "s15-b", text: "late" },
          {},
          { deadline: Date.now() + 100 },
        ),
      );
      expect(err.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
      await busy;
      expect(h.lab.deliveries.filter((d) => d.key === "s15-b" && d.text === "late")).to.have.length(0);
    });

    it("S15: a process slower than the deadline yields DEADLINE_EXCEEDED", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s15-c" });
      const err = await failure(
        unaryCall(
          h.clients.Counter,
          "Do",
          { key: "s15-c", delay_ms: 500 },
          {},
          { deadline: Date.now() + 150 },
        ),
      );
      expect(err.code).to.equal(grpc.status.DEADLINE_EXCEEDED);
    });

    it("S15: custom metadata and trace context propagate; S13: client sb-* values are overwritten", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s15-d" });
      const traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
      const out = await unaryCall<LabResult>(
        h.clients.Counter,
        "Do",
        { key: "s15-d" },
        {
          "x-tenant": "acme",
          traceparent,
          tracestate: "vendor=1",
          "sb-principal": "admin",
          "sb-message-id": "forged",
          "sb-custom": "dropped",
        },
      );
      const md = out.response.metadata;
      expect(md["x-tenant"]).to.equal("acme");
      expect(md.traceparent).to.equal(traceparent);
      expect(md.tracestate).to.equal("vendor=1");
      expect(md["sb-principal"]).to.equal("anonymous");
      expect(md["sb-message-id"]).to.not.equal("forged");
      expect(md["sb-message-id"]).to.equal(header(out.headers, "sb-message-id"));
      expect(md).to.not.have.property("sb-custom");
      // The process's own headers and trailers come back to the client.
      expect(header(out.headers, "x-lab-header")).to.equal("Do");
      expect(header(out.trailers, "x-lab-trailer")).to.equal("done");
    });

    it("S15: a call without trace context gets a fresh, valid one", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s15-e" });
      const out = await unaryCall<LabResult>(
        h.clients.Counter,
        "Do",
        { key: "s15-e" },
        { traceparent: "garbage" },
      );
      expect(out.response.traceparent).to.match(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
    });

    it("a service without session options passes calls through statelessly", async () => {
      const out = await unaryCall<LabResult>(h.clients.Plain, "Echo", { text: "hi" }, { "x-a": "b" });
      expect(out.response.text).to.equal("hi");
      expect(out.response.session_id).to.equal("");
      expect(out.response.metadata["x-a"]).to.equal("b");
      expect(header(out.headers, "sb-session-id")).to.equal(undefined);
      const err = await failure(unaryCall(h.clients.Plain, "Echo", {}, { "sb-seq": "1" }));
      expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
      const fault = await failure(unaryCall(h.clients.Plain, "Echo", { fail_code: 5 }));
      expect(fault.code).to.equal(grpc.status.NOT_FOUND);
      expect(reasonOf(fault)).to.equal("PROCESS_FAULT");
    });
  });
}
