import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { EndReason, SessionState } from "../../sdk/gen/sessionbridge/v1/session.js";
import { failure, unaryCall } from "../support/grpc-call.js";
import { type LabHarness, reasonOf, STORE_KINDS, startLabHarness } from "../support/lab-harness.js";
import type { LabResult } from "../support/lab-process.js";
import { waitFor } from "../support/wait.js";

/** S12: how sessions end and what later messages get, against every store. */
for (const store of STORE_KINDS) {
  describe(`session lifetime (S12), ${store} store`, () => {
    let h: LabHarness;
    before(async () => {
      h = await startLabHarness(store);
    });
    after(async () => {
      await h.close();
    });

    it("an end-session operation ends it: later messages get NOT_FOUND, by id SESSION_CLOSED", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "s12-a" });
      const id = start.response.session_id;
      await unaryCall(h.clients.Counter, "Finish", { key: "s12-a" });
      const byValues = await failure(unaryCall(h.clients.Counter, "Do", { key: "s12-a" }));
      expect(byValues.code).to.equal(grpc.status.NOT_FOUND);
      expect(reasonOf(byValues)).to.equal("CORRELATION_ERROR");
      const byId = await failure(
        unaryCall(h.clients.Counter, "Do", { key: "s12-a" }, { "sb-session-id": id }),
      );
      expect(byId.code).to.equal(grpc.status.NOT_FOUND);
      expect(reasonOf(byId)).to.equal("SESSION_CLOSED");
      const session = await h.sessions.getSession(id);
      expect(session.state).to.equal(SessionState.SESSION_STATE_CLOSED);
      expect(session.endReason).to.equal(EndReason.END_REASON_END_OPERATION);
    });

    it("a failed end-session operation leaves the session open", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s12-b" });
      await failure(unaryCall(h.clients.Counter, "Finish", { key: "s12-b", fail_code: 9 }));
      await unaryCall(h.clients.Counter, "Do", { key: "s12-b" });
    });

    it("messages queued behind the end get ABORTED/SESSION_ENDED and are never delivered", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "s12-c" });
      const finish = unaryCall(h.clients.Counter, "Finish", { key: "s12-c", delay_ms: 200 });
      await new Promise((r) => setTimeout(r, 30));
      const queued = failure(unaryCall(h.clients.Counter, "Do", { key: "s12-c", text: "late" }));
      await finish;
      const err = await queued;
      expect(err.code).to.equal(grpc.status.ABORTED);
      expect(reasonOf(err)).to.equal("SESSION_ENDED");
      expect(h.lab.deliveries.filter((d) => d.key === "s12-c" && d.text === "late")).to.have.length(0);
    });

    it("close is idempotent and aborts what was queued", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "s12-d" });
      const id = start.response.session_id;
      const busy = unaryCall(h.clients.Counter, "Do", { key: "s12-d", delay_ms: 200 });
      await new Promise((r) => setTimeout(r, 30));
      const queued = failure(unaryCall(h.clients.Counter, "Do", { key: "s12-d", text: "queued" }));
      const closed = await h.sessions.closeSession(id);
      expect(closed.state).to.equal(SessionState.SESSION_STATE_CLOSED);
      expect(closed.endReason).to.equal(EndReason.END_REASON_CLOSED);
      // The call that was running finishes normally; the queued one was never delivered.
      await busy;
      expect(reasonOf(await queued)).to.equal("SESSION_ENDED");
      const again = await h.sessions.closeSession(id);
      expect(again.state).to.equal(SessionState.SESSION_STATE_CLOSED);
      expect(again.endedAt).to.deep.equal(closed.endedAt);
    });

    it("an idle session expires: by id SESSION_EXPIRED, state EXPIRED, reason IDLE_TIMEOUT", async () => {
      const start = await unaryCall<LabResult>(h.clients.Unique, "Start", { key: "s12-idle" });
      const id = start.response.session_id;
      await waitFor(
        async () => (await h.sessions.getSession(id)).state === SessionState.SESSION_STATE_EXPIRED,
        3000,
      );
      const session = await h.sessions.getSession(id);
      expect(session.endReason).to.equal(EndReason.END_REASON_IDLE_TIMEOUT);
      const err = await failure(
        unaryCall(h.clients.Unique, "Do", { key: "s12-idle" }, { "sb-session-id": id }),
      );
      expect(err.code).to.equal(grpc.status.NOT_FOUND);
      expect(reasonOf(err)).to.equal("SESSION_EXPIRED");
      // The values are free again: the next starter opens a new session despite REJECT_DUPLICATE.
      const next = await unaryCall<LabResult>(h.clients.Unique, "Start", { key: "s12-idle" });
      expect(next.response.session_id).to.not.equal(id);
    });

    it("a busy session does not idle out, but ends at its maximum lifetime", async () => {
      const start = await unaryCall<LabResult>(h.clients.Unique, "Start", { key: "s12-life" });
      const id = start.response.session_id;
      const began = Date.now();
      // Calls of 200 ms back to back keep it busy well past its 400 ms idle timeout.
      let ended: grpc.ServiceError | undefined;
      while (ended === undefined && Date.now() - began < 4000) {
        try {
          await unaryCall(
            h.clients.Unique,
            "Do",
            { key: "s12-life", delay_ms: 200 },
            { "sb-session-id": id },
          );
        } catch (error) {
          ended = error as grpc.ServiceError;
        }
      }
      const lived = Date.now() - began;
      const session = await h.sessions.getSession(id);
      expect(session.endReason).to.equal(EndReason.END_REASON_MAX_LIFETIME);
      expect(session.state).to.equal(SessionState.SESSION_STATE_EXPIRED);
      // Lifetime is 1500 ms: it outlived its idle timeout several times over.
      expect(lived).to.be.greaterThanOrEqual(1400);
      expect(reasonOf(ended as grpc.ServiceError)).to.be.oneOf(["SESSION_EXPIRED", "SESSION_ENDED"]);
    });
  });
}
