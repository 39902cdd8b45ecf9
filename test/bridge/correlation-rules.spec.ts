import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { Code } from "../../bridge/errors/code.js";
import { failure } from "../support/grpc-call.js";
import { expectFault } from "../support/lab-client.js";
import {
  type LabHarness,
  reasonOf,
  ruleTargets,
  STORE_KINDS,
  startLabHarness,
  useLabHarness,
} from "../support/lab-harness.js";

/** S1–S5 through the bridge, against every store and every client library. */
for (const target of ruleTargets()) {
  describe(`session identity and correlation (S1–S5), ${target.title}`, () => {
    const harness = useLabHarness(target);

    it("S1: a starter gets a bridge-issued, URL-safe id of at least 128 bits back in sb-session-id", async () => {
      const out = await harness().client.unary("Counter", "Start", { key: "s1-a" });
      // 22 base64url characters carry 132 bits; the process saw the same id.
      expect(out.sessionId).to.match(/^[A-Za-z0-9_-]{22,}$/);
      expect(out.response.session_id).to.equal(out.sessionId);
      expect(out.messageId).to.equal(out.response.message_id);
    });

    it("S1: later messages reach the session by correlation values or by sb-session-id", async () => {
      const { client } = harness();
      const start = await client.unary("Counter", "Start", { key: "s1-b" });
      const id = start.sessionId ?? "";
      const byValues = await client.unary("Counter", "Do", { key: "s1-b", text: "one" });
      expect(byValues.response.session_id).to.equal(id);
      expect(byValues.sessionId).to.equal(id);
      const byId = await client.unary(
        "Counter",
        "Do",
        { key: "s1-b", text: "two" },
        { metadata: { "sb-session-id": id } },
      );
      expect(byId.response.session_id).to.equal(id);
      expect(byId.response.log).to.deep.equal(["Start", "Do:one", "Do:two"]);
    });

    it("S1: an id whose session has other correlation values is a CORRELATION_ERROR", async () => {
      const { client } = harness();
      const a = await client.unary("Counter", "Start", { key: "s1-c" });
      await client.unary("Counter", "Start", { key: "s1-d" });
      const err = await expectFault(
        client.unary("Counter", "Do", { key: "s1-d" }, { metadata: { "sb-session-id": a.sessionId ?? "" } }),
      );
      expect(err.code).to.equal(Code.NOT_FOUND);
      expect(err.reason).to.equal("CORRELATION_ERROR");
    });

    it("S1: an unknown session id is NOT_FOUND; a malformed one is INVALID_ARGUMENT", async () => {
      const { client } = harness();
      const unknown = await expectFault(
        client.unary(
          "Counter",
          "Do",
          { key: "x" },
          { metadata: { "sb-session-id": "AAAAAAAAAAAAAAAAAAAAAA" } },
        ),
      );
      expect(unknown.code).to.equal(Code.NOT_FOUND);
      expect(unknown.reason).to.equal("SESSION_NOT_FOUND");
      const malformed = await expectFault(
        client.unary("Counter", "Do", { key: "x" }, { metadata: { "sb-session-id": "not/an id" } }),
      );
      expect(malformed.code).to.equal(Code.INVALID_ARGUMENT);
    });

    it("S2/S3: concurrent starters with the same values start exactly one session and all join it", async () => {
      const h = harness();
      const before = h.lab.deliveries.length;
      const outs = await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          h.client.unary("Counter", "Start", { key: "s2-race", text: String(i) }),
        ),
      );
      const ids = new Set(outs.map((o) => o.sessionId));
      expect(ids.size).to.equal(1);
      // Each starter was delivered (Jolie: a matching starter joins the live session).
      expect(h.lab.deliveries.length - before).to.equal(8);
      const page = await h.client.sessions.list({ service: "test.lab.v1.Counter", pageSize: 1000 });
      expect(page.sessions.filter((s) => s.correlation.key === "s2-race")).to.have.length(1);
    });

    it("S3: with REJECT_DUPLICATE a starter matching a live session gets ALREADY_EXISTS", async () => {
      const { client } = harness();
      await client.unary("Unique", "Start", { key: "s3" });
      const err = await expectFault(client.unary("Unique", "Start", { key: "s3" }));
      expect(err.code).to.equal(Code.ALREADY_EXISTS);
      expect(err.reason).to.equal("SESSION_ALREADY_EXISTS");
    });

    it("S4: a non-starter that matches no session is NOT_FOUND/CORRELATION_ERROR, not delivered, nothing changes", async () => {
      const h = harness();
      const deliveries = h.lab.deliveries.length;
      const sessions = (await h.client.sessions.list({ pageSize: 1000 })).sessions.length;
      const err = await expectFault(h.client.unary("Counter", "Do", { key: "s4-nobody" }));
      expect(err.code).to.equal(Code.NOT_FOUND);
      expect(err.reason).to.equal("CORRELATION_ERROR");
      expect(h.lab.deliveries.length).to.equal(deliveries);
      expect((await h.client.sessions.list({ pageSize: 1000 })).sessions.length).to.equal(sessions);
    });

    it("S4: a request without its alias field is INVALID_ARGUMENT and never starts a session", async () => {
      const h = harness();
      const deliveries = h.lab.deliveries.length;
      const err = await expectFault(h.client.unary("Counter", "Start", { text: "no key" }));
      expect(err.code).to.equal(Code.INVALID_ARGUMENT);
      expect(err.reason).to.equal("MISSING_CORRELATION_VALUE");
      expect(h.lab.deliveries.length).to.equal(deliveries);
    });

    it("S5: different values are different sessions; the same value reaches the same one", async () => {
      const { client } = harness();
      const a = await client.unary("Counter", "Start", { key: "s5-a" });
      const b = await client.unary("Counter", "Start", { key: "s5-b" });
      expect(a.response.session_id).to.not.equal(b.response.session_id);
      const again = await client.unary("Counter", "Do", { key: "s5-b" });
      expect(again.response.session_id).to.equal(b.response.session_id);
    });

    it("S5: values of an ended session are free again: the next starter opens a new session", async () => {
      const { client } = harness();
      const first = await client.unary("Counter", "Start", { key: "s5-reuse" });
      await client.unary("Counter", "Finish", { key: "s5-reuse" });
      const second = await client.unary("Counter", "Start", { key: "s5-reuse" });
      expect(second.response.session_id).to.not.equal(first.response.session_id);
    });
  });
}

/** Bytes no client library would send from a typed message: raw gRPC frames (S4). */
for (const store of STORE_KINDS) {
  describe(`malformed messages (S4), ${store} store, raw grpc-js frames`, () => {
    let h: LabHarness;
    before(async () => {
      h = await startLabHarness(store);
    });
    after(async () => {
      await h.close();
    });

    it("S4: a request whose bytes are not the declared type is INVALID_ARGUMENT/MALFORMED_MESSAGE", async () => {
      const raw = new grpc.Client(h.address, grpc.credentials.createInsecure());
      try {
        // Field 1 (key, a string) sent as a varint: the wrong wire type.
        const bytes = Buffer.from([0x08, 0x2a]);
        const err = await failure(
          new Promise((resolve, reject) =>
            raw.makeUnaryRequest(
              "/test.lab.v1.Counter/Start",
              (b: Buffer) => b,
              (b: Buffer) => b,
              bytes,
              (error, value) => (error ? reject(error) : resolve(value)),
            ),
          ),
        );
        expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
        expect(reasonOf(err)).to.equal("MALFORMED_MESSAGE");
      } finally {
        raw.close();
      }
    });
  });
}
