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
import { ended, entry, session } from "./store-records.js";

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

  describe("a group of commits of one session (S6: a shared operation's calls)", () => {
    // The engine's commits of one session, each with the session as it stood when the commit
    // was made: entries that move the hot fields (S7 numbers among them), a commit whose
    // activity the journal cannot tell (the row is touched), a new session in between, and
    // an end (the row rewritten), then activity after the end.
    const s1 = session("s1", { journalLength: 1 });
    const s2 = session("s2", { journalLength: 1, correlationKey: "k2" });
    const shared: StoreBatch[] = [
      { entries: [entry("s1", 2)], sessions: [{ ...s1, journalLength: 2, lastActiveAtMs: 2_002 }] },
      {
        entries: [entry("s1", 3, { seq: 1 })],
        sessions: [{ ...s1, journalLength: 3, nextSeq: 2, lastActiveAtMs: 2_003 }],
        outboxAdd: [{ sessionId: "s1", messageId: "s1-m3", index: 3 }],
      },
      { sessions: [{ ...s1, journalLength: 3, nextSeq: 2, lastActiveAtMs: 9_000 }] },
      { entries: [entry("s2", 1)], sessions: [s2] },
      {
        entries: [entry("s1", 4), entry("s1", 5, { seq: 2 })],
        sessions: [{ ...s1, journalLength: 5, nextSeq: 3, lastActiveAtMs: 9_000 }],
        outboxRemove: [{ sessionId: "s1", messageId: "s1-m3" }],
      },
      { entries: [entry("s2", 2)], sessions: [{ ...s2, journalLength: 2, lastActiveAtMs: 2_002 }] },
      { sessions: [{ ...s1, journalLength: 5, nextSeq: 3, lastActiveAtMs: 9_500 }] },
      {
        entries: [entry("s1", 6, { recordedAtMs: 9_600 })],
        sessions: [ended({ ...s1, journalLength: 6, nextSeq: 3, lastActiveAtMs: 9_600 }, 9_600)],
      },
      { sessions: [ended({ ...s1, journalLength: 6, nextSeq: 3, lastActiveAtMs: 9_700 }, 9_600)] },
      {
        entries: [entry("s1", 7, { recordedAtMs: 9_800 })],
        sessions: [ended({ ...s1, journalLength: 7, nextSeq: 3, lastActiveAtMs: 9_800 }, 9_600)],
      },
    ];

    /** Every row the commits wrote, in a fixed order, to compare two databases. */
    const contents = (target: Database.Database) => ({
      sessions: target.prepare("SELECT * FROM sessions ORDER BY id").all(),
      journal: target.prepare("SELECT * FROM journal ORDER BY session_key, idx").all(),
      keys: target.prepare("SELECT * FROM session_keys ORDER BY key").all(),
      outbox: target.prepare("SELECT * FROM outbox ORDER BY session_id, message_id").all(),
    });

    /**
     * Rows the connection has inserted, updated or deleted so far, rolled-back work included:
     * the group makes the same decisions as the commits alone (a row touched or left alone)
     * only if it changes as many rows.
     */
    const rowsChanged = (target: Database.Database): number =>
      target.prepare("SELECT total_changes()").pluck().get() as number;

    /** The same commits on a second database, each in a transaction of its own. */
    const oneByOne = (batches: readonly StoreBatch[]) => {
      const other = openWriterConnection(join(dir, "one-by-one.db"), "full", 1000);
      try {
        migrate(other);
        const alone = createGroupApplier(other);
        alone.apply([commit({ sessions: [s1], entries: [entry("s1", 1)] })]);
        const before = rowsChanged(other);
        const results = batches.map((batch) => alone.apply([commit(batch)]).results[0]);
        return { results, contents: contents(other), changed: rowsChanged(other) - before };
      } finally {
        other.close();
      }
    };

    it("leaves the same rows in one transaction as in one transaction each", () => {
      applier.apply([commit({ sessions: [s1], entries: [entry("s1", 1)] })]);
      const before = rowsChanged(db);
      const grouped = applier.apply(shared.map(commit));
      expect(grouped.committed).to.equal(true);
      expect(grouped.results.every((r) => r.ok)).to.equal(true);
      const expected = oneByOne(shared);
      expect(expected.results.every((r) => r?.ok === true)).to.equal(true);
      expect(contents(db)).to.deep.equal(expected.contents);
      // Not run twice (the group was not refused and retried) and no row written needlessly.
      expect(rowsChanged(db) - before).to.equal(expected.changed);
      // The row was touched (9,000 is no entry's time) and rewritten (the end) on the way.
      const row = db.prepare("SELECT * FROM sessions WHERE id = 's1'").get() as Record<string, unknown>;
      expect(row.state).to.equal("closed");
      expect(row.last_active_at_ms).to.equal(9_700);
    });

    it("leaves the same rows when a commit of the group is refused (S9: it alone)", () => {
      applier.apply([commit({ sessions: [s1], entries: [entry("s1", 1)] })]);
      // Index 9 does not continue the journal: refused, the group runs again in savepoints.
      const refused: StoreBatch = {
        entries: [entry("s1", 9)],
        sessions: [{ ...s1, journalLength: 9, lastActiveAtMs: 9_900 }],
      };
      const batches = [...shared.slice(0, 3), refused, ...shared.slice(3)];
      const grouped = applier.apply(batches.map(commit));
      expect(grouped.committed).to.equal(true);
      expect(grouped.results.map((r) => r.ok)).to.deep.equal(batches.map((b) => b !== refused));
      const expected = oneByOne(batches);
      expect(expected.results.map((r) => r?.ok)).to.deep.equal(batches.map((b) => b !== refused));
      expect(contents(db)).to.deep.equal(expected.contents);
    });
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
