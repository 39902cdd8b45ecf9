import { expect } from "chai";
import { Code } from "../../bridge/errors/code.js";
import { SessionState } from "../../sdk/gen/sessionbridge/v1/session.js";
import { expectFault } from "../support/lab-client.js";
import { labTargets, useLabHarness } from "../support/lab-harness.js";

/** sessionbridge.v1.SessionService against every store and client. */
for (const target of labTargets()) {
  describe(`SessionService, ${target.title}`, () => {
    const harness = useLabHarness(target);

    it("Get returns what the session is; unknown ids are NOT_FOUND", async () => {
      const { client } = harness();
      const start = await client.unary("Counter", "Start", { key: "ss-a" });
      await client.unary("Counter", "Do", { key: "ss-a" }, { metadata: { "sb-seq": "1" } });
      const session = await client.sessions.get(start.response.session_id);
      expect(session.service).to.equal("test.lab.v1.Counter");
      expect(session.state).to.equal(SessionState.SESSION_STATE_ACTIVE);
      expect(session.correlationSet).to.equal("k");
      expect(session.correlation).to.deep.equal({ key: "ss-a" });
      expect(session.principal).to.equal("anonymous");
      expect(session.nextSeq).to.equal(2);
      expect(session.journalLength).to.equal(5);
      const err = await expectFault(client.sessions.get("AAAAAAAAAAAAAAAAAAAAAA"));
      expect(err.code).to.equal(Code.NOT_FOUND);
      expect(err.reason).to.equal("SESSION_NOT_FOUND");
    });

    it("List pages through every session without repeats, filtered by service and state", async () => {
      const { client } = harness();
      for (let i = 0; i < 7; i++) await client.unary("Counter", "Start", { key: `ss-list-${i}` });
      await client.unary("Counter", "Finish", { key: "ss-list-0" });
      const seen: string[] = [];
      let pageToken = "";
      do {
        const page = await client.sessions.list({ service: "test.lab.v1.Counter", pageSize: 3, pageToken });
        expect(page.sessions.length).to.be.at.most(3);
        seen.push(...page.sessions.map((s) => s.id));
        pageToken = page.nextPageToken;
      } while (pageToken !== "");
      expect(new Set(seen).size).to.equal(seen.length);
      const all = await client.sessions.list({ service: "test.lab.v1.Counter", pageSize: 1000 });
      expect(seen).to.deep.equal(all.sessions.map((s) => s.id));
      const closed = await client.sessions.list({ state: SessionState.SESSION_STATE_CLOSED, pageSize: 1000 });
      expect(closed.sessions.map((s) => s.correlation.key)).to.include("ss-list-0");
      expect(closed.sessions.every((s) => s.state === SessionState.SESSION_STATE_CLOSED)).to.equal(true);
    });

    it("List rejects bad page sizes and tokens with INVALID_ARGUMENT", async () => {
      const { client } = harness();
      const size = await expectFault(client.sessions.list({ pageSize: 5000 }));
      expect(size.code).to.equal(Code.INVALID_ARGUMENT);
      const token = await expectFault(client.sessions.list({ pageToken: "!!not-a-token!!" }));
      expect(token.code).to.equal(Code.INVALID_ARGUMENT);
    });

    it("History from an index returns the rest of the journal", async () => {
      const { client } = harness();
      const start = await client.unary("Counter", "Start", { key: "ss-h" });
      await client.unary("Counter", "Do", { key: "ss-h" });
      const indexes: number[] = [];
      for await (const e of client.sessions.history({ sessionId: start.response.session_id, fromIndex: 3 }))
        indexes.push(e.index);
      expect(indexes).to.deep.equal([3, 4, 5]);
    });

    it("History with follow stops when the reader aborts", async () => {
      const { client } = harness();
      const start = await client.unary("Counter", "Start", { key: "ss-follow" });
      const stop = new AbortController();
      const indexes: number[] = [];
      for await (const e of client.sessions.history(
        { sessionId: start.response.session_id, follow: true },
        { signal: stop.signal },
      )) {
        indexes.push(e.index);
        if (indexes.length === 3) stop.abort();
      }
      expect(indexes).to.deep.equal([1, 2, 3]);
    });

    it("History and Close of an unknown session are NOT_FOUND", async () => {
      const { client } = harness();
      const read = async () => {
        for await (const _ of client.sessions.history({ sessionId: "AAAAAAAAAAAAAAAAAAAAAA" })) {
          // nothing expected
        }
      };
      expect((await expectFault(read())).code).to.equal(Code.NOT_FOUND);
      expect((await expectFault(client.sessions.close("AAAAAAAAAAAAAAAAAAAAAA"))).code).to.equal(
        Code.NOT_FOUND,
      );
    });
  });
}
