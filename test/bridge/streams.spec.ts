import { expect } from "chai";
import { Code } from "../../bridge/errors/code.js";
import { EnvelopeKind } from "../../sdk/gen/sessionbridge/v1/envelope.js";
import { expectFault, headerOf } from "../support/lab-client.js";
import { labTargets, useLabHarness } from "../support/lab-harness.js";
import { readJournal, waitForAccepted } from "../support/lab-journal.js";
import { waitFor } from "../support/wait.js";

/** Unary and all three streaming kinds pass through a session (S6, S9), against every store and client. */
for (const target of labTargets()) {
  describe(`streaming calls through sessions, ${target.title}`, () => {
    const harness = useLabHarness(target);

    it("server streaming: every response arrives in order, with session headers and trailers, and is journaled", async () => {
      const { client } = harness();
      const start = await client.unary("Counter", "Start", { key: "st-a" });
      const out = await client.serverStream("Counter", "Watch", { key: "st-a", text: "w", count: 5 });
      expect(out.response.map((m) => m.text)).to.deep.equal(["w#1", "w#2", "w#3", "w#4", "w#5"]);
      expect(out.sessionId).to.equal(start.response.session_id);
      expect(headerOf(out.trailers, "x-lab-trailer")).to.equal("watched");
      const kinds = (await readJournal(client, start.response.session_id)).map((e) => e.envelope?.kind ?? 0);
      expect(kinds.filter((k) => k === EnvelopeKind.ENVELOPE_KIND_RESPONSE)).to.have.length(1 + 5);
      expect(kinds.at(-1)).to.equal(EnvelopeKind.ENVELOPE_KIND_ACK);
    });

    it("client streaming: the first message correlates; every message reaches the process", async () => {
      const { client } = harness();
      const start = await client.unary("Counter", "Start", { key: "st-b" });
      const out = await client.clientStream(
        "Counter",
        "Upload",
        ["a", "b", "c"].map((text) => ({ key: "st-b", text })),
      );
      expect(out.response.text).to.equal("a,b,c");
      expect(out.response.session_id).to.equal(start.response.session_id);
    });

    // Bidi streaming over the Connect protocol needs HTTP/2 (docs/http.md); the lab's
    // Connect client speaks HTTP/1.1, where the bridge refuses it rather than half-serve it.
    if (target.client === "connect") {
      it("bidi streaming over the Connect protocol on HTTP/1.1 is UNIMPLEMENTED, never half-served", async () => {
        const response = await fetch(`http://${harness().runtime.http?.address}/test.lab.v1.Counter/Chat`, {
          method: "POST",
          headers: { "content-type": "application/connect+json" },
          body: Buffer.from([0, 0, 0, 0, 2, 0x7b, 0x7d]),
        });
        const body = Buffer.from(await response.arrayBuffer());
        // The Connect streaming format: the error is in the end-stream message.
        expect(body[0]).to.equal(2);
        const end = JSON.parse(body.subarray(5).toString("utf8")) as { error: { code: string } };
        expect(end.error.code).to.equal("unimplemented");
      });
    } else {
      it("bidi streaming: messages flow both ways within the session", async () => {
        const { client } = harness();
        const start = await client.unary("Counter", "Start", { key: "st-c" });
        const out = await client.bidi(
          "Counter",
          "Chat",
          ["x", "y"].map((text) => ({ key: "st-c", text })),
        );
        expect(out.response.map((m) => m.text)).to.deep.equal(["echo:x", "echo:y"]);
        expect(out.response.every((m) => m.session_id === start.response.session_id)).to.equal(true);
      });
    }

    it("a stream for values that match no session is NOT_FOUND/CORRELATION_ERROR", async () => {
      const { client } = harness();
      const err = await expectFault(client.serverStream("Counter", "Watch", { key: "st-nobody", count: 1 }));
      expect(err.code).to.equal(Code.NOT_FOUND);
      expect(err.reason).to.equal("CORRELATION_ERROR");
    });

    it("sb-seq on a streaming call is rejected: numbering applies to single-message calls", async () => {
      const { client } = harness();
      await client.unary("Counter", "Start", { key: "st-d" });
      const err = await expectFault(
        client.serverStream("Counter", "Watch", { key: "st-d", count: 1 }, { metadata: { "sb-seq": "1" } }),
      );
      expect(err.code).to.equal(Code.INVALID_ARGUMENT);
      expect(err.reason).to.equal("UNSUPPORTED_ON_STREAM");
    });

    it("a stream the caller cancels gives the session's turn back and is journaled as CANCELLED", async () => {
      const h = harness();
      const start = await h.client.unary("Counter", "Start", { key: "st-f" });
      const gate = h.lab.hold("st-f", "Watch");
      const cancel = new AbortController();
      const watching = expectFault(
        h.client.serverStream("Counter", "Watch", { key: "st-f", count: 3 }, { signal: cancel.signal }),
      );
      await waitFor(() => h.lab.deliveries.some((d) => d.key === "st-f" && d.method === "Watch"));
      cancel.abort();
      expect((await watching).code).to.equal(Code.CANCELLED);
      // The bridge passes the cancellation on to the process (S15) before the process goes on.
      const watch = h.lab.deliveries.find((d) => d.key === "st-f" && d.method === "Watch");
      await waitFor(() => h.lab.cancelled.has(watch?.messageId ?? ""), 10_000, "the process sees the cancel");
      gate.release();
      // The next exclusive call gets its turn.
      const next = await h.client.unary("Counter", "Do", { key: "st-f", text: "next" });
      expect(next.response.session_id).to.equal(start.response.session_id);
      const faults = (await readJournal(h.client, start.response.session_id))
        .filter((e) => e.envelope?.kind === EnvelopeKind.ENVELOPE_KIND_FAULT)
        .map((e) => e.envelope?.fault?.reason);
      expect(faults).to.include("CANCELLED");
    });

    it("an exclusive stream holds the session's turn until it ends", async () => {
      const h = harness();
      const start = await h.client.unary("Counter", "Start", { key: "st-e" });
      const gate = h.lab.hold("st-e", "Watch");
      const watching = h.client.serverStream("Counter", "Watch", { key: "st-e", text: "s", count: 3 });
      await waitFor(() => h.lab.deliveries.some((d) => d.key === "st-e" && d.method === "Watch"));
      const after = h.client.unary("Counter", "Do", { key: "st-e", text: "after" });
      await waitForAccepted(h.client, start.sessionId ?? "", "/test.lab.v1.Counter/Do", 1);
      // Accepted and queued, but not delivered while the stream holds the turn.
      expect(h.lab.deliveries.filter((d) => d.key === "st-e" && d.method === "Do")).to.have.length(0);
      gate.release();
      await watching;
      expect((await after).response.log).to.deep.equal(["Start", "Watch:s", "Do:after"]);
    });
  });
}
