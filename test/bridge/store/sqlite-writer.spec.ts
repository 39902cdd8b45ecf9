import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type Database from "better-sqlite3";
import { expect } from "chai";
import { Code } from "../../../bridge/errors/code.js";
import { Reason } from "../../../bridge/errors/reason.js";
import type { StoreBatch } from "../../../bridge/store/session-store.js";
import {
  type CommitRequest,
  createGroupApplier,
  type GroupApplier,
} from "../../../bridge/store/sqlite-apply.js";
import { openWriterConnection } from "../../../bridge/store/sqlite-connection.js";
import { fromWireError } from "../../../bridge/store/sqlite-protocol.js";
import { migrate } from "../../../bridge/store/sqlite-schema.js";
import { openTempSqlite } from "./sqlite-fixture.js";
import { entry, session } from "./store-records.js";

const commit = (batch: StoreBatch): CommitRequest => ({ type: "commit", batch, sentAtMs: 0 });

describe("SQLite writer", () => {
  let dir: string;
  let db: Database.Database;
  let applier: GroupApplier;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "sessionbridge-writer-"));
    db = openWriterConnection(join(dir, "sessions.db"), "full", 1000);
    migrate(db);
    applier = createGroupApplier(db);
  });

  afterEach(() => {
    db.close();
    rmSync(dir, { recursive: true, force: true });
  });

  const journalRows = (): number => db.prepare("SELECT count(*) FROM journal").pluck().get() as number;
  const sessionRows = (): number => db.prepare("SELECT count(*) FROM sessions").pluck().get() as number;

  it("keeps its page cache small: the end of every commit scans all of it", () => {
    // SQLite's default in this build is 16,000 KiB; the scan made commits cost twice as much.
    expect(db.pragma("cache_size", { simple: true })).to.equal(-2000);
  });

  it("refuses a lone commit that conflicts, leaves nothing of it, and goes on (S9)", () => {
    expect(applier.apply([commit({ sessions: [session("s1")], entries: [entry("s1", 1)] })])).to.deep.equal({
      results: [{ ok: true }],
      committed: true,
    });
    // Index 3 does not continue a journal that ends at 1; the session row rides along.
    const refused = applier.apply([
      commit({ sessions: [session("s2")], entries: [entry("s1", 3), entry("s2", 1)] }),
    ]);
    expect(refused.committed).to.equal(false);
    const [result] = refused.results;
    expect(result?.ok).to.equal(false);
    const error = result !== undefined && !result.ok ? fromWireError(result.error) : undefined;
    expect(error?.code).to.equal(Code.ABORTED);
    expect(error?.reason).to.equal(Reason.JOURNAL_CONFLICT);
    expect(db.inTransaction).to.equal(false);
    expect(journalRows()).to.equal(1);
    expect(sessionRows()).to.equal(1);

    expect(applier.apply([commit({ entries: [entry("s1", 2)] })]).results).to.deep.equal([{ ok: true }]);
    expect(journalRows()).to.equal(2);
  });

  it("refuses a lone commit that takes a live session's correlation (S5)", () => {
    const bound = { correlationSet: "byOrder", correlation: { orderId: "o-1" }, correlationKey: "o-1" };
    applier.apply([commit({ sessions: [session("s1", bound)] })]);
    const { results, committed } = applier.apply([
      commit({ sessions: [session("s2", bound)], entries: [entry("s2", 1)] }),
    ]);
    expect(committed).to.equal(false);
    const [result] = results;
    const error = result !== undefined && !result.ok ? fromWireError(result.error) : undefined;
    expect(error?.code).to.equal(Code.ALREADY_EXISTS);
    expect(error?.reason).to.equal(Reason.SESSION_ALREADY_EXISTS);
    expect(journalRows()).to.equal(0);
    expect(sessionRows()).to.equal(1);
  });

  it("in a group, keeps nothing of a commit refused half-way and commits the others (S5)", () => {
    const bound = { correlationSet: "byOrder", correlation: { orderId: "o-1" }, correlationKey: "o-1" };
    // The second commit's entry is written before its session row hits the S5 index.
    const { results, committed } = applier.apply([
      commit({ sessions: [session("s1", bound)], entries: [entry("s1", 1)] }),
      commit({ sessions: [session("s2", bound)], entries: [entry("s2", 1)] }),
      commit({ sessions: [session("s3")], entries: [entry("s3", 1)] }),
    ]);
    expect(committed).to.equal(true);
    expect(results.map((r) => r.ok)).to.deep.equal([true, false, true]);
    const [, refused] = results;
    const error = refused !== undefined && !refused.ok ? fromWireError(refused.error) : undefined;
    expect(error?.reason).to.equal(Reason.SESSION_ALREADY_EXISTS);
    expect(db.prepare("SELECT id FROM sessions ORDER BY id").pluck().all()).to.deep.equal(["s1", "s3"]);
    expect(journalRows()).to.equal(2);
  });

  it("runs the step that rides along once, after the group, also when a commit is refused", () => {
    let steps = 0;
    const journalAtStep: number[] = [];
    const { results, committed } = applier.apply(
      [commit({ entries: [entry("s1", 1)] }), commit({ entries: [entry("s1", 3)] })],
      () => {
        steps++;
        journalAtStep.push(journalRows());
      },
    );
    expect(committed).to.equal(true);
    expect(results.map((r) => r.ok)).to.deep.equal([true, false]);
    expect(steps).to.equal(1);
    expect(journalAtStep).to.deep.equal([1]);
  });

  it("in a group, refuses only the commit that conflicts", () => {
    const { results, committed } = applier.apply([
      commit({ entries: [entry("s1", 1)] }),
      commit({ entries: [entry("s1", 5)] }),
      commit({ entries: [entry("s1", 2)] }),
    ]);
    expect(committed).to.equal(true);
    expect(results.map((r) => r.ok)).to.deep.equal([true, false, true]);
    expect(journalRows()).to.equal(2);
  });
});

describe("SQLite writer thread messages", () => {
  it("counts the messages each way: a commit is one message to the writer and one answer", async () => {
    const temp = await openTempSqlite();
    try {
      const before = temp.store.stats();
      await temp.store.commit({ entries: [entry("s1", 1)] });
      const after = temp.store.stats();
      expect(after.messagesSent - before.messagesSent).to.equal(1);
      expect(after.messagesReceived - before.messagesReceived).to.equal(1);
    } finally {
      await temp.cleanup();
    }
  });
});
