import { expect } from "chai";
import { EnvelopeKind } from "../../sdk/gen/sessionbridge/v1/envelope.js";
import type { JournalEntry } from "../../sdk/gen/sessionbridge/v1/session.js";
import { ruleTargets, useLabHarness } from "../support/lab-harness.js";
import { kindsOf, readJournal } from "../support/lab-journal.js";
import { waitFor } from "../support/wait.js";

/** S9 (journal) and S11 (one-way retries) through the bridge, against every store and client. */
for (const target of ruleTargets()) {
  describe(`journal and one-way delivery (S9, S11), ${target.title}`, () => {
    const harness = useLabHarness(target);
    const journal = (sessionId: string) => readJournal(harness().client, sessionId);

    it("S9: every accepted message and its outcome are in the session's journal, in order", async () => {
      const { client } = harness();
      const start = await client.unary("Counter", "Start", { key: "s9-a" });
      const id = start.response.session_id;
      await client.unary("Counter", "Do", { key: "s9-a", text: "x" }, { metadata: { "x-custom": "kept" } });
      const entries = await journal(id);
      expect(entries.map((e) => e.index)).to.deep.equal([1, 2, 3, 4, 5]);
      expect(kindsOf(entries)).to.deep.equal([
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
      const h = harness();
      const start = await h.client.unary("Counter", "Start", { key: "s9-b" });
      // The process holds the note: the acknowledgement cannot have waited for it.
      const gate = h.lab.hold("s9-b", "Fire");
      const ack = await h.client.unary("Counter", "Fire", { key: "s9-b", text: "note" });
      expect(kindsOf(await journal(start.response.session_id))).to.include("ENVELOPE_KIND_ONE_WAY");
      expect(kindsOf(await journal(start.response.session_id))).to.not.include("ENVELOPE_KIND_ACK");
      gate.release();
      await waitFor(async () =>
        kindsOf(await journal(start.response.session_id)).includes("ENVELOPE_KIND_ACK"),
      );
      const entries = await journal(start.response.session_id);
      const oneWay = entries.find((e) => e.envelope?.kind === EnvelopeKind.ENVELOPE_KIND_ONE_WAY);
      expect(oneWay?.envelope?.messageId).to.equal(ack.messageId);
      expect(h.lab.deliveries.find((d) => d.method === "Fire" && d.key === "s9-b")?.messageId).to.equal(
        ack.messageId,
      );
    });

    it("S6/S9: one-way messages reach the process in order with the calls around them", async () => {
      const { client } = harness();
      await client.unary("Counter", "Start", { key: "s9-c" });
      await client.unary("Counter", "Fire", { key: "s9-c", text: "1", delay_ms: 50 });
      await client.unary("Counter", "Fire", { key: "s9-c", text: "2" });
      const out = await client.unary("Counter", "Do", { key: "s9-c", text: "3" });
      expect(out.response.log).to.deep.equal(["Start", "Fire:1", "Fire:2", "Do:3"]);
    });

    it("S9: History with follow streams new entries live and ends when the session has ended", async () => {
      const { client } = harness();
      const start = await client.unary("Counter", "Start", { key: "s9-d" });
      const seen: JournalEntry[] = [];
      const following = (async () => {
        for await (const entry of client.sessions.history({
          sessionId: start.response.session_id,
          follow: true,
        }))
          seen.push(entry);
      })();
      await waitFor(() => seen.length === 3);
      await client.unary("Counter", "Do", { key: "s9-d", text: "live" });
      await waitFor(() => seen.length === 5);
      await client.unary("Counter", "Finish", { key: "s9-d" });
      await following;
      expect(seen.map((e) => e.index)).to.deep.equal(seen.map((_, i) => i + 1));
      const last = seen.at(-1)?.envelope;
      expect(last?.kind).to.equal(EnvelopeKind.ENVELOPE_KIND_EVENT);
      expect(last?.metadata.event).to.equal("session.ended");
    });

    it("S11: a failing one-way delivery is retried with backoff until it succeeds", async () => {
      const h = harness();
      const start = await h.client.unary("Counter", "Start", { key: "s11-a" });
      await h.client.unary("Counter", "Fire", { key: "s11-a", text: "flaky", fail_times: 2 });
      await waitFor(async () =>
        kindsOf(await journal(start.response.session_id)).includes("ENVELOPE_KIND_ACK"),
      );
      const attempts = h.lab.deliveries.filter((d) => d.key === "s11-a" && d.method === "Fire");
      expect(attempts).to.have.length(3);
      expect(new Set(attempts.map((d) => d.messageId)).size).to.equal(1);
      const ack = (await journal(start.response.session_id)).find(
        (e) => e.envelope?.kind === EnvelopeKind.ENVELOPE_KIND_ACK,
      );
      expect(ack?.envelope?.metadata.attempts).to.equal("3");
    });

    it("S11: after the configured attempts the failure is recorded in the journal", async () => {
      const h = harness();
      const start = await h.client.unary("Counter", "Start", { key: "s11-b" });
      await h.client.unary("Counter", "Fire", { key: "s11-b", text: "doomed", fail_times: 100 });
      await waitFor(async () =>
        kindsOf(await journal(start.response.session_id)).includes("ENVELOPE_KIND_FAULT"),
      );
      const fault = (await journal(start.response.session_id)).find(
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
      const h = harness();
      const start = await h.client.unary("Counter", "Start", { key: "s11-c" });
      await h.client.unary("Counter", "Fire", { key: "s11-c", fail_code: 3 });
      await waitFor(async () =>
        kindsOf(await journal(start.response.session_id)).includes("ENVELOPE_KIND_FAULT"),
      );
      // Once the fault is recorded the dispatcher has given up: nothing else is in flight.
      const later = await h.client.unary("Counter", "Do", { key: "s11-c", text: "after" });
      expect(later.response.log).to.deep.equal(["Start", "Do:after"]);
      expect(h.lab.deliveries.filter((d) => d.key === "s11-c" && d.method === "Fire")).to.have.length(1);
    });
  });
}
