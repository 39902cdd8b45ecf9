import { expect } from "chai";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { SessionState } from "../../sdk/gen/sessionbridge/v1/session.js";
import { expectFault, type LabFault } from "../support/lab-client.js";
import { useLabHarness } from "../support/lab-harness.js";
import { kindsOf, readJournal } from "../support/lab-journal.js";
import { waitFor } from "../support/wait.js";

/** What the memory store may hold in these tests: about twenty 1 KB calls. */
const MAX_MEMORY_BYTES = 64 * 1024;
const TEXT_BYTES = 1000;

/**
 * DESIGN §7 (no client grows the bridge's memory without bound) on the memory store, as a
 * client sees it: one client that keeps calling one session fills storeOptions.maxMemoryBytes
 * and then gets RESOURCE_EXHAUSTED (STORE_FULL) for what was neither journaled nor delivered
 * nor acknowledged (S9); ending a session gives the room back.
 */
for (const client of ["grpc-js", "connect"] as const) {
  describe(`memory store budget as the client sees it, ${client} client`, () => {
    const harness = useLabHarness(
      { store: "memory", client, title: `memory store, ${client} client` },
      {
        adjust: (config) => ({ ...config, store: { kind: "memory", maxMemoryBytes: MAX_MEMORY_BYTES } }),
      },
    );
    const text = (label: string) => `${label}:`.padEnd(TEXT_BYTES, "x");

    /** Calls Do on `key` until the store refuses one; the fault and how many were answered. */
    const fill = async (key: string): Promise<{ fault: LabFault; answered: number; refusedText: string }> => {
      const h = harness();
      for (let i = 0; i < 1000; i++) {
        const refusedText = text(`${key}-${i}`);
        const outcome = await h.client.unary("Counter", "Do", { key, text: refusedText }).then(
          () => undefined,
          (error: unknown) => error as LabFault,
        );
        if (outcome !== undefined) return { fault: outcome, answered: i, refusedText };
      }
      throw new Error("the store took 1000 calls of 1 KB under a 64 KiB budget");
    };

    it("refuses the call that does not fit: RESOURCE_EXHAUSTED (STORE_FULL), never delivered nor journaled", async () => {
      const h = harness();
      const start = await h.client.unary("Counter", "Start", { key: "full-a" });
      const sessionId = start.response.session_id;
      const { fault, answered, refusedText } = await fill("full-a");
      expect({ code: fault.code, reason: fault.reason }).to.deep.equal({
        code: Code.RESOURCE_EXHAUSTED,
        reason: Reason.STORE_FULL,
      });
      expect(answered).to.be.within(5, 60);
      expect(h.lab.deliveries.filter((d) => d.text === refusedText)).to.deep.equal([]);
      // The journal holds the start and each answered call (request and response), nothing more.
      const entries = await readJournal(h.client, sessionId);
      expect(entries).to.have.length(3 + 2 * answered);
      const requests = entries.filter((e) => e.envelope?.operation === "/test.lab.v1.Counter/Do");
      expect(requests).to.have.length(2 * answered);

      // A one-way call refused for room is not acknowledged (S9), so it is never delivered.
      const fire = await expectFault(
        h.client.unary("Counter", "Fire", { key: "full-a", text: "refused-note" }),
      );
      expect({ code: fire.code, reason: fire.reason }).to.deep.equal({
        code: Code.RESOURCE_EXHAUSTED,
        reason: Reason.STORE_FULL,
      });
      // Nor can another session start while the store is full.
      const other = await expectFault(h.client.unary("Counter", "Start", { key: "full-b" }));
      expect(other.code).to.equal(Code.RESOURCE_EXHAUSTED);

      // Ending the session gives its room back: a new session takes calls again.
      await h.client.sessions.close(sessionId);
      const next = await h.client.unary("Counter", "Start", { key: "full-c" });
      await h.client.unary("Counter", "Do", { key: "full-c", text: "after" });
      await h.client.unary("Counter", "Fire", { key: "full-c", text: "accepted-note" });
      await waitFor(() => h.lab.deliveries.some((d) => d.text === "accepted-note"));
      expect(h.lab.deliveries.filter((d) => d.text === "refused-note")).to.deep.equal([]);
      expect(h.lab.logOf(next.response.session_id)).to.deep.equal([
        "Start",
        "Do:after",
        "Fire:accepted-note",
      ]);
      await h.client.sessions.close(next.response.session_id);
    });

    it("ends a session through its end operation on a full store, in the reserved eighth (S12)", async () => {
      const h = harness();
      const start = await h.client.unary("Counter", "Start", { key: "full-end" });
      const sessionId = start.response.session_id;
      // Other sessions fill the store (the lab's replies carry the session's log, so the
      // session that ends keeps a short one and a short reply).
      const fillers: string[] = [];
      try {
        await endOnFullStore(sessionId, fillers);
      } finally {
        for (const id of fillers) await h.client.sessions.close(id);
      }
    });

    const endOnFullStore = async (sessionId: string, fillers: string[]): Promise<void> => {
      const h = harness();
      let fault: LabFault | undefined;
      for (let i = 0; i < 200 && fault === undefined; i++) {
        const key = `full-end-filler-${i}`;
        try {
          const filler = await h.client.unary("Counter", "Start", { key });
          fillers.push(filler.response.session_id);
          await h.client.unary("Counter", "Do", { key, text: text(key) });
        } catch (error) {
          fault = error as LabFault;
        }
      }
      expect(fault?.reason).to.equal(Reason.STORE_FULL);

      // An end request that even the whole budget cannot hold is still refused: neither
      // journaled nor delivered nor acknowledged (S9), and the session stays live.
      const huge = text("finish-huge").padEnd(16 * 1024, "y");
      const refused = await expectFault(h.client.unary("Counter", "Finish", { key: "full-end", text: huge }));
      expect({ code: refused.code, reason: refused.reason }).to.deep.equal({
        code: Code.RESOURCE_EXHAUSTED,
        reason: Reason.STORE_FULL,
      });
      expect(h.lab.deliveries.filter((d) => d.text === huge)).to.deep.equal([]);
      expect(kindsOf(await readJournal(h.client, sessionId))).to.deep.equal([
        "ENVELOPE_KIND_EVENT",
        "ENVELOPE_KIND_REQUEST",
        "ENVELOPE_KIND_RESPONSE",
      ]);

      // New work in the session is still refused; its end operation is admitted and ends it.
      const other = await expectFault(h.client.unary("Counter", "Do", { key: "full-end", text: "more" }));
      expect(other.reason).to.equal(Reason.STORE_FULL);
      await h.client.unary("Counter", "Finish", { key: "full-end", text: "bye" });
      expect(h.lab.logOf(sessionId)).to.deep.equal(["Start", "Finish:bye"]);
      const entries = await readJournal(h.client, sessionId);
      expect(kindsOf(entries.slice(3))).to.deep.equal([
        "ENVELOPE_KIND_REQUEST",
        "ENVELOPE_KIND_RESPONSE",
        "ENVELOPE_KIND_EVENT",
      ]);
      expect(entries[3]?.envelope?.operation).to.equal("/test.lab.v1.Counter/Finish");
      expect((await h.client.sessions.get(sessionId)).state).to.equal(SessionState.SESSION_STATE_CLOSED);
      // The reserve is not opened to new work: another session still cannot start.
      const next = await expectFault(h.client.unary("Counter", "Start", { key: "full-end-next" }));
      expect(next.reason).to.equal(Reason.STORE_FULL);
    };

    if (client === "connect") {
      it("answers HTTP 429 with the Connect error body when the store is full", async () => {
        const h = harness();
        await h.client.unary("Counter", "Start", { key: "full-http" });
        const { fault } = await fill("full-http");
        expect(fault.reason).to.equal(Reason.STORE_FULL);
        const response = await fetch(`http://${h.runtime.http?.address}/test.lab.v1.Counter/Do`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ key: "full-http", text: text("over-http") }),
        });
        expect(response.status).to.equal(429);
        const body = (await response.json()) as { code: string };
        expect(body.code).to.equal("resource_exhausted");
        expect(h.lab.deliveries.filter((d) => d.text === text("over-http"))).to.deep.equal([]);
      });
    }
  });
}
