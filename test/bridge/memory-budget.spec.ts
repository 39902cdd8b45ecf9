import { expect } from "chai";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { expectFault, type LabFault } from "../support/lab-client.js";
import { useLabHarness } from "../support/lab-harness.js";
import { readJournal } from "../support/lab-journal.js";
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
