import { expect } from "chai";
import { Code } from "../../bridge/errors/code.js";
import { ManualClock } from "../../bridge/util/clock.js";
import { EndReason, SessionState } from "../../sdk/gen/sessionbridge/v1/session.js";
import { expectFault } from "../support/lab-client.js";
import { ruleTargets, useLabHarness } from "../support/lab-harness.js";
import { waitForAccepted } from "../support/lab-journal.js";
import { waitFor } from "../support/wait.js";

/** The Unique service's lifetime limits (test/fixtures/lab/.../lab.proto). */
const IDLE_TIMEOUT_MS = 400;
const MAX_LIFETIME_MS = 1500;

/**
 * S12: how sessions end and what later messages get, against every store and client.
 * Session time is a ManualClock: idle timeout and maximum lifetime come when the test
 * moves time, not after real sleeps.
 */
for (const target of ruleTargets()) {
  describe(`session lifetime (S12), ${target.title}`, () => {
    const clock = new ManualClock();
    const harness = useLabHarness(target, { clock });

    it("an end-session operation ends it: later messages get NOT_FOUND, by id SESSION_CLOSED", async () => {
      const { client } = harness();
      const start = await client.unary("Counter", "Start", { key: "s12-a" });
      const id = start.response.session_id;
      await client.unary("Counter", "Finish", { key: "s12-a" });
      const byValues = await expectFault(client.unary("Counter", "Do", { key: "s12-a" }));
      expect(byValues.code).to.equal(Code.NOT_FOUND);
      expect(byValues.reason).to.equal("CORRELATION_ERROR");
      const byId = await expectFault(
        client.unary("Counter", "Do", { key: "s12-a" }, { metadata: { "sb-session-id": id } }),
      );
      expect(byId.code).to.equal(Code.NOT_FOUND);
      expect(byId.reason).to.equal("SESSION_CLOSED");
      const session = await client.sessions.get(id);
      expect(session.state).to.equal(SessionState.SESSION_STATE_CLOSED);
      expect(session.endReason).to.equal(EndReason.END_REASON_END_OPERATION);
    });

    it("a failed end-session operation leaves the session open", async () => {
      const { client } = harness();
      await client.unary("Counter", "Start", { key: "s12-b" });
      await expectFault(client.unary("Counter", "Finish", { key: "s12-b", fail_code: 9 }));
      await client.unary("Counter", "Do", { key: "s12-b" });
    });

    it("messages queued behind the end get ABORTED/SESSION_ENDED and are never delivered", async () => {
      const h = harness();
      const start = await h.client.unary("Counter", "Start", { key: "s12-c" });
      const gate = h.lab.hold("s12-c", "Finish");
      const finish = h.client.unary("Counter", "Finish", { key: "s12-c" });
      await waitFor(() => h.lab.deliveries.some((d) => d.key === "s12-c" && d.method === "Finish"));
      const queued = expectFault(h.client.unary("Counter", "Do", { key: "s12-c", text: "late" }));
      await waitForAccepted(h.client, start.sessionId ?? "", "/test.lab.v1.Counter/Do", 1);
      gate.release();
      await finish;
      const err = await queued;
      expect(err.code).to.equal(Code.ABORTED);
      expect(err.reason).to.equal("SESSION_ENDED");
      expect(h.lab.deliveries.filter((d) => d.key === "s12-c" && d.text === "late")).to.have.length(0);
    });

    it("close is idempotent and aborts what was queued", async () => {
      const h = harness();
      const start = await h.client.unary("Counter", "Start", { key: "s12-d" });
      const id = start.response.session_id;
      const gate = h.lab.hold("s12-d", "Do");
      const busy = h.client.unary("Counter", "Do", { key: "s12-d", text: "busy" });
      await waitFor(() => h.lab.deliveries.some((d) => d.key === "s12-d" && d.method === "Do"));
      const queued = expectFault(h.client.unary("Counter", "Do", { key: "s12-d", text: "queued" }));
      await waitForAccepted(h.client, id, "/test.lab.v1.Counter/Do", 2);
      const closed = await h.client.sessions.close(id);
      expect(closed.state).to.equal(SessionState.SESSION_STATE_CLOSED);
      expect(closed.endReason).to.equal(EndReason.END_REASON_CLOSED);
      gate.release();
      // The call that was running finishes normally; the queued one was never delivered.
      await busy;
      expect((await queued).reason).to.equal("SESSION_ENDED");
      expect(h.lab.deliveries.filter((d) => d.key === "s12-d" && d.text === "queued")).to.have.length(0);
      const again = await h.client.sessions.close(id);
      expect(again.state).to.equal(SessionState.SESSION_STATE_CLOSED);
      expect(again.endedAt).to.deep.equal(closed.endedAt);
    });

    it("an idle session expires: by id SESSION_EXPIRED, state EXPIRED, reason IDLE_TIMEOUT", async () => {
      const { client } = harness();
      const start = await client.unary("Unique", "Start", { key: "s12-idle" });
      const id = start.response.session_id;
      clock.advance(IDLE_TIMEOUT_MS - 1);
      expect((await client.sessions.get(id)).state).to.equal(SessionState.SESSION_STATE_ACTIVE);
      clock.advance(1);
      await waitFor(async () => (await client.sessions.get(id)).state === SessionState.SESSION_STATE_EXPIRED);
      const session = await client.sessions.get(id);
      expect(session.endReason).to.equal(EndReason.END_REASON_IDLE_TIMEOUT);
      const err = await expectFault(
        client.unary("Unique", "Do", { key: "s12-idle" }, { metadata: { "sb-session-id": id } }),
      );
      expect(err.code).to.equal(Code.NOT_FOUND);
      expect(err.reason).to.equal("SESSION_EXPIRED");
      // The values are free again: the next starter opens a new session despite REJECT_DUPLICATE.
      const next = await client.unary("Unique", "Start", { key: "s12-idle" });
      expect(next.response.session_id).to.not.equal(id);
    });

    it("activity and calls in flight keep a session from idling out, but it ends at its maximum lifetime", async () => {
      const h = harness();
      const { client } = h;
      const start = await client.unary("Unique", "Start", { key: "s12-life" });
      const id = start.response.session_id;
      const byId = { metadata: { "sb-session-id": id } };
      // A call held in the process across several idle periods: a busy session is not idle.
      const gate = h.lab.hold("s12-life", "Do");
      const busy = client.unary("Unique", "Do", { key: "s12-life", text: "busy" }, byId);
      await waitFor(() => h.lab.deliveries.some((d) => d.key === "s12-life" && d.text === "busy"));
      for (let moved = 0; moved < 2 * IDLE_TIMEOUT_MS; moved += IDLE_TIMEOUT_MS / 4) {
        clock.advance(IDLE_TIMEOUT_MS / 4);
      }
      expect((await client.sessions.get(id)).state).to.equal(SessionState.SESSION_STATE_ACTIVE);
      gate.release();
      await busy;
      // Activity restarts the idle period: a call every 300 ms keeps it alive past 400 ms.
      for (let at = 2 * IDLE_TIMEOUT_MS; at + 300 < MAX_LIFETIME_MS; at += 300) {
        clock.advance(300);
        await client.unary("Unique", "Do", { key: "s12-life", text: `at ${at + 300}` }, byId);
      }
      expect((await client.sessions.get(id)).state).to.equal(SessionState.SESSION_STATE_ACTIVE);
      // Active or not, it ends when its maximum lifetime is reached.
      clock.advance(300);
      await waitFor(async () => (await client.sessions.get(id)).state === SessionState.SESSION_STATE_EXPIRED);
      const session = await client.sessions.get(id);
      expect(session.endReason).to.equal(EndReason.END_REASON_MAX_LIFETIME);
      const err = await expectFault(client.unary("Unique", "Do", { key: "s12-life" }, byId));
      expect(err.reason).to.equal("SESSION_EXPIRED");
    });
  });
}
