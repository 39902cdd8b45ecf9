import { expect } from "chai";
import { EnvelopeKind } from "../../sdk/gen/sessionbridge/v1/envelope.js";
import type { JournalEntry } from "../../sdk/gen/sessionbridge/v1/session.js";
import { header, unaryCall } from "../support/grpc-call.js";
import { type LabHarness, STORE_KINDS, startLabHarness } from "../support/lab-harness.js";
import type { LabResult } from "../support/lab-process.js";
import { sleep, waitFor } from "../support/wait.js";

async function history(h: LabHarness, sessionId: string): Promise<JournalEntry[]> {
  const entries: JournalEntry[] = [];
  for await (const entry of h.sessions.history({ sessionId })) entries.push(entry);
  return entries;
}

const kinds = (entries: JournalEntry[]) => entries.map((e) => EnvelopeKind[e.envelope?.kind ?? 0]);

/** S9 (journal) and S11 (one-way retries) through the bridge, against every store. */
for (const store of STORE_KINDS) {
  describe(`journal and one-way delivery (S9, S11), ${store} store`, () => {
    let h: LabHarness;
    before(async () => {
      h = await startLabHarness(store);
    });
    after(async () => {
      await h.close();
    });

    it("S9: every accepted message and its outcome are in the session's journal, in order", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "s9-a" });
      const id = start.response.session_id;
      await unaryCall(h.clients.Counter, "Do", { key: "s9-a", text: "x" }, { "x-custom": "kept" });
      const entries = await history(h, id);
      expect(entries.map((e) => e.index)).to.deep.equal([1, 2, 3, 4, 5]);
      expect(kinds(entries)).to.deep.equal([
        "ENVELOPE_KIND_EVENT",
        "ENVELOPE_KIND_REQUEST",
        "ENVELOPE_KIND_RESPONSE",
        "ENVELOPE_KIND_REQUEST",
        "ENVELOPE_KIND_RESPONSE",
      ]);
      const request = entries[3]?.envelope;
      expect(request?.operation).to.equal("/test.lab.v1.Counter/Do");
      expect(request?.sessionId).to.equal(id);
      expect(request?.correlation).to.deep.equal({ key: "s9-a" });
      expect(request?.metadata["x-custom"]).to.equal("kept");
      expect(request?.messageId).to.equal(entries[4]?.envelope?.inReplyTo);
      expect(request?.traceparent).to.match(/^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/);
    });

    it("S9: a one-way call is acknowledged once journaled, then delivered, and its ACK recorded", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "s9-b" });
      // The process takes 300 ms; the acknowledgement does not wait for it.
      const began = Date.now();
      const ack = await unaryCall(h.clients.Counter, "Fire", { key: "s9-b", text: "note", delay_ms: 300 });
      expect(Date.now() - began).to.be.lessThan(300);
      const messageId = header(ack.headers, "sb-message-id");
      await waitFor(async () =>
        kinds(await history(h, start.response.session_id)).includes("ENVELOPE_KIND_ACK"),
      );
      const entries = await history(h, start.response.session_id);
      const oneWay = entries.find((e) => e.envelope?.kind === EnvelopeKind.ENVELOPE_KIND_ONE_WAY);
      expect(oneWay?.envelope?.messageId).to.equal(messageId);
      expect(h.lab.deliveries.find((d) => d.method === "Fire" && d.key === "s9-b")?.messageId).to.equal(
        messageId,
      );
    });

    it("S6/S9: one-way messages reach the process in order with the calls around them", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s9-c" });
      await unaryCall(h.clients.Counter, "Fire", { key: "s9-c", text: "1", delay_ms: 50 });
      await unaryCall(h.clients.Counter, "Fire", { key: "s9-c", text: "2" });
      const out = await unaryCall<LabResult>(h.clients.Counter, "Do", { key: "s9-c", text: "3" });
      expect(out.response.log).to.deep.equal(["Start", "Fire:1", "Fire:2", "Do:3"]);
    });

    it("S9: History with follow streams new entries live and ends when the session has ended", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "s9-d" });
      const seen: JournalEntry[] = [];
      const following = (async () => {
        for await (const entry of h.sessions.history({ sessionId: start.response.session_id, follow: true }))
          seen.push(entry);
      })();
      await waitFor(() => seen.length === 3);
      await unaryCall(h.clients.Counter, "Do", { key: "s9-d", text: "live" });
      await waitFor(() => seen.length === 5);
      await unaryCall(h.clients.Counter, "Finish", { key: "s9-d" });
      await following;
      expect(seen.map((e) => e.index)).to.deep.equal(seen.map((_, i) => i + 1));
      const last = seen.at(-1)?.envelope;
      expect(last?.kind).to.equal(EnvelopeKind.ENVELOPE_KIND_EVENT);
      expect(last?.metadata.event).to.equal("session.ended");
    });

    it("S11: a failing one-way delivery is retried with backoff until it succeeds", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "s11-a" });
      await unaryCall(h.clients.Counter, "Fire", { key: "s11-a", text: "flaky", fail_times: 2 });
      await waitFor(async () =>
        kinds(await history(h, start.response.session_id)).includes("ENVELOPE_KIND_ACK"),
      );
      const attempts = h.lab.deliveries.filter((d) => d.key === "s11-a" && d.method === "Fire");
      expect(attempts).to.have.length(3);
      expect(new Set(attempts.map((d) => d.messageId)).size).to.equal(1);
      const ack = (await history(h, start.response.session_id)).find(
        (e) => e.envelope?.kind === EnvelopeKind.ENVELOPE_KIND_ACK,
      );
      expect(ack?.envelope?.metadata.attempts).to.equal("3");
    });

    it("S11: after the configured attempts the failure is recorded in the journal", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "s11-b" });
      await unaryCall(h.clients.Counter, "Fire", { key: "s11-b", text: "doomed", fail_times: 100 });
      await waitFor(async () =>
        kinds(await history(h, start.response.session_id)).includes("ENVELOPE_KIND_FAULT"),
      );
      const fault = (await history(h, start.response.session_id)).find(
        (e) => e.envelope?.kind === EnvelopeKind.ENVELOPE_KIND_FAULT,
      );
      expect(fault?.envelope?.fault?.reason).to.equal("DELIVERY_FAILED");
      expect(fault?.envelope?.fault?.code).to.equal(14);
      expect(fault?.envelope?.fault?.metadata.attempts).to.equal(
        String(h.config.defaults.oneWay.maxAttempts),
      );
      expect(h.lab.deliveries.filter((d) => d.key === "s11-b" && d.method === "Fire")).to.have.length(
        h.config.defaults.oneWay.maxAttempts,
      );
    });

    it("S11: a one-way failure that retrying cannot fix is recorded after one attempt", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "s11-c" });
      await unaryCall(h.clients.Counter, "Fire", { key: "s11-c", fail_code: 3 });
      await waitFor(async () =>
        kinds(await history(h, start.response.session_id)).includes("ENVELOPE_KIND_FAULT"),
      );
      await sleep(50);
      expect(h.lab.deliveries.filter((d) => d.key === "s11-c" && d.method === "Fire")).to.have.length(1);
    });
  });
}
