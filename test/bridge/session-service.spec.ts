import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { SessionState } from "../../sdk/gen/sessionbridge/v1/session.js";
import { failure, unaryCall } from "../support/grpc-call.js";
import { type LabHarness, reasonOf, STORE_KINDS, startLabHarness } from "../support/lab-harness.js";
import type { LabResult } from "../support/lab-process.js";

/** sessionbridge.v1.SessionService against every store. */
for (const store of STORE_KINDS) {
  describe(`SessionService, ${store} store`, () => {
    let h: LabHarness;
    before(async () => {
      h = await startLabHarness(store);
    });
    after(async () => {
      await h.close();
    });

    it("Get returns what the session is; unknown ids are NOT_FOUND", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "ss-a" });
      await unaryCall(h.clients.Counter, "Do", { key: "ss-a" }, { "sb-seq": "1" });
      const session = await h.sessions.getSession(start.response.session_id);
      expect(session.service).to.equal("test.lab.v1.Counter");
      expect(session.state).to.equal(SessionState.SESSION_STATE_ACTIVE);
      expect(session.correlationSet).to.equal("k");
      expect(session.correlation).to.deep.equal({ key: "ss-a" });
      expect(session.principal).to.equal("anonymous");
      expect(session.nextSeq).to.equal(2);
      expect(session.journalLength).to.equal(5);
      const err = await failure(h.sessions.getSession("AAAAAAAAAAAAAAAAAAAAAA"));
      expect((err as grpc.ServiceError).code).to.equal(grpc.status.NOT_FOUND);
      expect(reasonOf(err)).to.equal("SESSION_NOT_FOUND");
    });

    it("List pages through every session without repeats, filtered by service and state", async () => {
      for (let i = 0; i < 7; i++) await unaryCall(h.clients.Counter, "Start", { key: `ss-list-${i}` });
      await unaryCall(h.clients.Counter, "Finish", { key: "ss-list-0" });
      const seen: string[] = [];
      let pageToken = "";
      do {
        const page = await h.sessions.listSessions({
          service: "test.lab.v1.Counter",
          pageSize: 3,
          pageToken,
        });
        expect(page.sessions.length).to.be.at.most(3);
        seen.push(...page.sessions.map((s) => s.id));
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      expect(new Set(seen).size).to.equal(seen.length);
      const all = await h.sessions.listSessions({ service: "test.lab.v1.Counter", pageSize: 1000 });
      expect(seen).to.deep.equal(all.sessions.map((s) => s.id));
      const closed = await h.sessions.listSessions({
        state: SessionState.SESSION_STATE_CLOSED,
        pageSize: 1000,
      });
      expect(closed.sessions.map((s) => s.correlation.key)).to.include("ss-list-0");
      expect(closed.sessions.every((s) => s.state === SessionState.SESSION_STATE_CLOSED)).to.equal(true);
    });

    it("List rejects bad page sizes and tokens with INVALID_ARGUMENT", async () => {
      const size = await failure(h.sessions.listSessions({ pageSize: 5000 }));
      expect((size as grpc.ServiceError).code).to.equal(grpc.status.INVALID_ARGUMENT);
      const token = await failure(h.sessions.listSessions({ pageToken: "!!not-a-token!!" }));
      expect((token as grpc.ServiceError).code).to.equal(grpc.status.INVALID_ARGUMENT);
    });

    it("History from an index returns the rest of the journal", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "ss-h" });
      await unaryCall(h.clients.Counter, "Do", { key: "ss-h" });
      const indexes: number[] = [];
      for await (const e of h.sessions.history({ sessionId: start.response.session_id, fromIndex: 3 }))
        indexes.push(e.index);
      expect(indexes).to.deep.equal([3, 4, 5]);
    });

    it("History and Close of an unknown session are NOT_FOUND", async () => {
      const read = async () => {
        for await (const _ of h.sessions.history({ sessionId: "AAAAAAAAAAAAAAAAAAAAAA" })) {
          // nothing expected
        }
      };
      expect(((await failure(read())) as grpc.ServiceError).code).to.equal(grpc.status.NOT_FOUND);
      expect(
        ((await failure(h.sessions.closeSession("AAAAAAAAAAAAAAAAAAAAAA"))) as grpc.ServiceError).code,
      ).to.equal(grpc.status.NOT_FOUND);
    });
  });
}
