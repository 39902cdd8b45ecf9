import { spawn } from "node:child_process";
import { readdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import Database from "better-sqlite3";
import { expect } from "chai";
import { DEFAULT_MAX_MEMORY_BYTES } from "../../../bridge/config/config.js";
import { Code } from "../../../bridge/errors/code.js";
import { Reason } from "../../../bridge/errors/reason.js";
import { createStore } from "../../../bridge/store/create-store.js";
import { migrate, SCHEMA_VERSION } from "../../../bridge/store/sqlite-schema.js";
import { CHECKPOINT_EVERY_ROWS, createSqliteStore } from "../../../bridge/store/sqlite-store.js";
import { expectBridgeError } from "./expect-bridge-error.js";
import { openTempSqlite, type TempSqlite } from "./sqlite-fixture.js";
import { ended, entry, idempotency, outbox, session } from "./store-records.js";

describe("SQLite store", () => {
  let temp: TempSqlite;

  beforeEach(async () => {
    temp = await openTempSqlite();
  });

  afterEach(async () => {
    await temp.cleanup();
  });

  it("keeps everything across close and reopen (S10)", async () => {
    const live = session("s1", {
      correlationSet: "byOrder",
      correlation: { orderId: "o-1" },
      correlationKey: "o-1",
    });
    const closed = ended(session("s2"), 5_000);
    await temp.store.commit({
      sessions: [live, closed],
      entries: [entry("s1", 1, { seq: 1 }), entry("s1", 2, { inReplyTo: "s1-m1", kind: 2 }), entry("s1", 3)],
      idempotency: [idempotency("alice", "k", { sessionId: "s1", outcome: new Uint8Array([7]) })],
      outboxAdd: [outbox("s1", 3)],
    });

    const store = await temp.reopen();
    expect(await store.recover()).to.deep.equal({ sessions: [live], outbox: [outbox("s1", 3)] });
    expect(await store.getSession("s2")).to.deep.equal(closed);
    expect(await store.findBySeq("s1", 1)).to.deep.equal({
      request: entry("s1", 1, { seq: 1 }),
      outcomes: [entry("s1", 2, { inReplyTo: "s1-m1", kind: 2 })],
    });
    expect(await store.getIdempotency("alice", "k")).to.deep.equal(
      idempotency("alice", "k", { sessionId: "s1", outcome: new Uint8Array([7]) }),
    );
    // The correlation index is the database's own, so it is back too (S5, S10).
    await expectBridgeError(
      store.commit({ sessions: [{ ...live, id: "s3" }] }),
      Code.ALREADY_EXISTS,
      Reason.SESSION_ALREADY_EXISTS,
    );
  });

  it("makes commits sent before close durable before close resolves", async () => {
    const commits = Array.from({ length: 50 }, (_, i) =>
      temp.store.commit({ entries: [entry("s1", i + 1)] }),
    );
    await temp.store.close();
    await Promise.all(commits);
    const store = await temp.reopen();
    expect(await store.readJournal("s1", 1, 100)).to.have.length(50);
  });

  it("group-commits batches that queue while the writer is busy", async () => {
    const before = temp.store.stats();
    const count = 200;
    await Promise.all(
      Array.from({ length: count }, (_, i) => temp.store.commit({ entries: [entry("s1", i + 1)] })),
    );
    const after = temp.store.stats();
    expect(after.batches - before.batches).to.equal(count);
    expect(after.transactions - before.transactions)
      .to.be.greaterThan(0)
      .and.lessThan(count);
    expect(await temp.store.readJournal("s1", 1, count + 1)).to.have.length(count);
  });

  it("starts its checkpointer thread only when the first checkpoint is due", async () => {
    // The fixture's store is open: a second one on another file adds its writer thread
    // and, with the checkpointer started up front, that thread too.
    const threads = (): number => readdirSync("/proc/self/task").length;
    const before = threads();
    const other = await createSqliteStore({ path: join(temp.dir, "other.db") });
    try {
      expect(threads() - before).to.equal(1);
      const rows = Math.ceil((CHECKPOINT_EVERY_ROWS + 1) / 500) * 500;
      for (let first = 1; first <= rows; first += 500) {
        await other.commit({ entries: Array.from({ length: 500 }, (_, i) => entry("s1", first + i)) });
      }
      while (other.stats().checkpoints === 0) await new Promise((resolve) => setTimeout(resolve, 10));
      expect(threads() - before).to.equal(2);
    } finally {
      await other.close();
    }
  });

  it("checkpoints the WAL from its own thread once enough rows are committed", async () => {
    expect(temp.store.stats().checkpoints).to.equal(0);
    const rows = Math.ceil((CHECKPOINT_EVERY_ROWS + 1) / 500) * 500;
    for (let first = 1; first <= rows; first += 500) {
      await temp.store.commit({
        entries: Array.from({ length: 500 }, (_, i) => entry("s1", first + i)),
      });
    }
    // The request does not wait for the checkpoint; wait for the thread's answer.
    while (temp.store.stats().checkpoints === 0) await new Promise((resolve) => setTimeout(resolve, 10));
    const db = new Database(temp.path, { readonly: true });
    try {
      expect(db.prepare("SELECT count(*) AS n FROM journal").get()).to.deep.equal({ n: rows });
    } finally {
      db.close();
    }
    await temp.store.commit({ entries: [entry("s1", rows + 1)] });
    expect(await temp.store.readJournal("s1", rows - 1, 10)).to.have.length(3);
  });

  it("fails a bad batch alone inside a group and commits its neighbours", async () => {
    await temp.store.commit({
      sessions: [session("holder", { correlationKey: "k" })],
      entries: [entry("s1", 1)],
    });
    const before = temp.store.stats();
    const good = (i: number) => temp.store.commit({ entries: [entry("s1", i)] });
    const first = Array.from({ length: 50 }, (_, i) => good(i + 2));
    const between = temp.store.commit({ entries: [entry("s1", 52)], sessions: [session("between")] });
    const reused = temp.store.commit({ entries: [entry("s1", 1)], sessions: [session("dup2")] });
    const conflict = temp.store.commit({ sessions: [session("taker", { correlationKey: "k" })] });
    const rest = Array.from({ length: 50 }, (_, i) => good(i + 53));

    await Promise.all([...first, between, ...rest]);
    await expectBridgeError(reused, Code.ABORTED, Reason.JOURNAL_CONFLICT);
    await expectBridgeError(conflict, Code.ALREADY_EXISTS, Reason.SESSION_ALREADY_EXISTS);
    const after = temp.store.stats();
    expect(after.batches - before.batches).to.equal(103);
    expect(after.transactions - before.transactions, "the bad batches shared transactions").to.be.lessThan(
      103,
    );

    expect(await temp.store.readJournal("s1", 1, 200)).to.have.length(1 + 50 + 1 + 50);
    expect(await temp.store.getSession("between")).to.not.equal(undefined);
    expect(await temp.store.getSession("dup2")).to.equal(undefined);
    expect(await temp.store.getSession("taker")).to.equal(undefined);
  });

  it("fails every batch of a transaction that cannot commit, and goes on afterwards", async () => {
    const locked = await openTempSqlite("full", 20);
    try {
      await locked.store.commit({ entries: [entry("s1", 1)] });
      // Another connection holds the write lock, so the writer's transaction cannot begin.
      const blocker = new Database(locked.path);
      blocker.exec("BEGIN IMMEDIATE");
      const failed = Array.from({ length: 20 }, (_, i) =>
        locked.store.commit({ entries: [entry("s1", i + 2)] }),
      );
      for (const commit of failed) {
        const error = await expectBridgeError(commit, Code.INTERNAL, Reason.STORE_FAILURE);
        expect((error.cause as { code?: string }).code).to.equal("SQLITE_BUSY");
      }
      // Reads go on while the writer is blocked (WAL).
      expect(await locked.store.readJournal("s1", 1, 100)).to.have.length(1);
      blocker.exec("ROLLBACK");
      blocker.close();

      await locked.store.commit({ entries: [entry("s1", 2)] });
      expect((await locked.store.readJournal("s1", 1, 100)).map((e) => e.index)).to.deep.equal([1, 2]);
    } finally {
      await locked.cleanup();
    }
  });

  it("runs in WAL mode with the current schema version", async () => {
    await temp.store.commit({ sessions: [session("s1")] });
    const db = new Database(temp.path, { readonly: true });
    try {
      expect(db.pragma("journal_mode", { simple: true })).to.equal("wal");
      expect(db.pragma("user_version", { simple: true })).to.equal(SCHEMA_VERSION);
      // Small pages for a new database: each commit writes whole pages to the WAL.
      expect(db.pragma("page_size", { simple: true })).to.equal(512);
      const indexes = db
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql LIKE '%UNIQUE%'")
        .all();
      expect(indexes).to.deep.equal([{ name: "sessions_live_correlation" }]);
    } finally {
      db.close();
    }
  });

  it("carries the data of a version 1 database through the later migrations", async () => {
    const path = join(temp.dir, "v1.db");
    const v1 = new Database(path);
    migrate(v1, 1);
    const insert = v1.prepare(
      `INSERT INTO journal (session_id, idx, message_id, kind, seq, in_reply_to, recorded_at_ms, envelope)
       VALUES (?, ?, ?, 1, ?, ?, 5, x'0102')`,
    );
    insert.run("s1", 1, "req-1", 1, "");
    insert.run("s1", 2, "out-2", 0, "req-1");
    insert.run("s1", 3, "req-3", 0, "");
    v1.close();

    const store = await createSqliteStore({ path });
    try {
      const request = { sessionId: "s1", index: 1, messageId: "req-1", kind: 1, seq: 1, inReplyTo: "" };
      const found = await store.findByMessageId("s1", "req-1");
      expect({ ...found?.request, envelope: undefined, recordedAtMs: undefined }).to.deep.equal({
        ...request,
        envelope: undefined,
        recordedAtMs: undefined,
      });
      expect(found?.outcomes.map((e) => e.messageId)).to.deep.equal(["out-2"]);
      expect((await store.findBySeq("s1", 1))?.outcomes.map((e) => e.index)).to.deep.equal([2]);
      await store.commit({ entries: [entry("s1", 4)] });
    } finally {
      await store.close();
    }
    const db = new Database(path, { readonly: true });
    try {
      expect(db.pragma("user_version", { simple: true })).to.equal(SCHEMA_VERSION);
      expect(db.prepare("SELECT count(*) AS n FROM journal").get()).to.deep.equal({ n: 4 });
    } finally {
      db.close();
    }
  });

  it("answers lookups from indexes, not scans", async () => {
    await temp.store.commit({ sessions: [session("s1")], entries: [entry("s1", 1)] });
    const db = new Database(temp.path, { readonly: true });
    try {
      const plan = (sql: string): string =>
        db
          .prepare(`EXPLAIN QUERY PLAN ${sql}`)
          .all("a", "b")
          .map((row) => (row as { detail: string }).detail)
          .join("; ");
      const key = "(SELECT key FROM session_keys WHERE id = ?)";
      expect(
        plan(
          `SELECT * FROM journal WHERE session_key = ${key} AND exchange = ? AND in_reply_to = '' ORDER BY idx`,
        ),
      ).to.contain("USING INDEX journal_exchange");
      expect(
        plan(
          `SELECT * FROM journal WHERE session_key = ${key} AND exchange = ? AND in_reply_to <> '' ORDER BY idx`,
        ),
      ).to.contain("USING INDEX journal_exchange");
      expect(plan(`SELECT * FROM journal WHERE session_key = ${key} AND seq = ? AND seq > 0`)).to.contain(
        "USING INDEX journal_seq",
      );
      expect(
        plan("SELECT * FROM sessions WHERE service = ? AND correlation_key = ? AND state = 'active'"),
      ).to.contain("USING INDEX sessions_live_correlation");
    } finally {
      db.close();
    }
  });

  it("finishes on the next purge what a close cut short, leaving no journal without its session", async () => {
    const due = 400;
    for (let first = 0; first < due; first += 50) {
      const ids = Array.from({ length: 50 }, (_, i) => `ended-${first + i}`);
      await temp.store.commit({
        sessions: ids.map((id) => ended(session(id), 100)),
        entries: ids.flatMap((id) => Array.from({ length: 100 }, (_, i) => entry(id, i + 1))),
      });
    }
    const purging = temp.store.purge(1_000, 0).then(
      (counts) => counts.sessions,
      (error: unknown) => {
        expect((error as { reason?: string }).reason).to.equal(Reason.SHUTTING_DOWN);
        return 0;
      },
    );
    // Let a few purge steps run between these commits, then close in the middle of it.
    await temp.store.commit({ entries: [entry("busy", 1)] });
    await temp.store.commit({ entries: [entry("busy", 2)] });
    await temp.store.close();
    const purgedFirst = await purging;

    const orphans = (): unknown => {
      const db = new Database(temp.path, { readonly: true });
      try {
        return db
          .prepare(
            `SELECT count(*) AS n FROM journal
             WHERE session_key NOT IN (SELECT key FROM session_keys WHERE id IN (SELECT id FROM sessions))`,
          )
          .get();
      } finally {
        db.close();
      }
    };
    // Journal rows of sessions never in the table ("busy") are not the purge's doing.
    expect(orphans()).to.deep.equal({ n: 2 });
    const store = await temp.reopen();
    const purgedNext = (await store.purge(1_000, 0)).sessions;
    // A purge cut short reports nothing; what it deleted stays deleted.
    expect(purgedFirst === 0 ? purgedNext : purgedFirst).to.be.within(1, due);
    expect(orphans()).to.deep.equal({ n: 2 });
    expect((await store.listSessions({ pageSize: 10 })).sessions).to.deep.equal([]);
    for (const id of ["ended-0", `ended-${due - 1}`]) {
      expect(await store.readJournal(id, 1, 10)).to.deep.equal([]);
      expect(await store.getSession(id)).to.equal(undefined);
    }
  });

  it("refuses a database written by a newer schema version", async () => {
    await temp.store.close();
    const db = new Database(temp.path);
    db.pragma(`user_version = ${SCHEMA_VERSION + 1}`);
    db.close();
    const error = await expectBridgeError(
      createSqliteStore({ path: temp.path, synchronous: "full" }),
      Code.INTERNAL,
      Reason.STORE_FAILURE,
    );
    expect(error.message).to.contain(`schema version ${SCHEMA_VERSION + 1}`);
  });

  it("reports a file it cannot open as a store failure", async () => {
    const notADirectory = join(temp.dir, "plain-file");
    writeFileSync(notADirectory, "");
    await expectBridgeError(
      createSqliteStore({ path: join(notADirectory, "sessions.db") }),
      Code.INTERNAL,
      Reason.STORE_FAILURE,
    );
    const notADatabase = join(temp.dir, "garbage.db");
    writeFileSync(notADatabase, "this is not a SQLite database, just some text long enough to have a header");
    await expectBridgeError(createSqliteStore({ path: notADatabase }), Code.INTERNAL, Reason.STORE_FAILURE);
  });

  it("rejects options it cannot honour", async () => {
    await expectBridgeError(
      createSqliteStore({ path: ":memory:" }),
      Code.INVALID_ARGUMENT,
      Reason.INVALID_CONFIG,
    );
    await expectBridgeError(createSqliteStore({ path: "" }), Code.INVALID_ARGUMENT, Reason.INVALID_CONFIG);
    await expectBridgeError(
      createSqliteStore({ path: join(temp.dir, "x.db"), busyTimeoutMs: -1 }),
      Code.INVALID_ARGUMENT,
      Reason.INVALID_CONFIG,
    );
    const synchronous = "off" as unknown as "full";
    await expectBridgeError(
      createSqliteStore({ path: join(temp.dir, "x.db"), synchronous }),
      Code.INVALID_ARGUMENT,
      Reason.INVALID_CONFIG,
    );
  });

  it("works with synchronous=normal", async () => {
    const normal = await openTempSqlite("normal");
    try {
      await normal.store.commit({ sessions: [session("s1")], entries: [entry("s1", 1)] });
      const store = await normal.reopen();
      expect(await store.readJournal("s1", 1, 10)).to.deep.equal([entry("s1", 1)]);
    } finally {
      await normal.cleanup();
    }
  });

  it("is what createStore builds for a sqlite config", async () => {
    const store = await createStore({
      kind: "sqlite",
      path: join(temp.dir, "by-config.db"),
      synchronous: "full",
    });
    try {
      expect(store.kind).to.equal("sqlite");
      await store.commit({ sessions: [session("s1")] });
      expect(await store.getSession("s1")).to.deep.equal(session("s1"));
    } finally {
      await store.close();
    }
    const memory = await createStore({ kind: "memory", maxMemoryBytes: DEFAULT_MAX_MEMORY_BYTES });
    expect(memory.kind).to.equal("memory");
    await memory.close();
  });

  it("loses no resolved commit when its process is killed (S10)", async () => {
    await temp.store.close();
    const fixture = new URL("./fixtures/commit-until-killed.js", import.meta.url);
    const child = spawn(process.execPath, [fixture.pathname, temp.path], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let output = "";
    const exited = new Promise<NodeJS.Signals | null>((resolve) =>
      child.on("exit", (_code, signal) => resolve(signal)),
    );
    await new Promise<void>((resolve) => {
      child.stdout.setEncoding("utf8");
      child.stdout.on("data", (chunk: string) => {
        output += chunk;
        // Kill it once it is well into the stream, with commits still in flight.
        if (output.split("\n").length - 1 >= 300 && child.kill("SIGKILL")) resolve();
      });
      child.on("exit", () => resolve());
    });
    expect(await exited, "the child was killed, not finished").to.equal("SIGKILL");
    await new Promise<void>((resolve) =>
      child.stdout.readableEnded ? resolve() : child.stdout.on("end", resolve),
    );

    // Only whole lines: a line cut by the kill was never fully reported.
    const reported = output
      .split("\n")
      .slice(0, -1)
      .map((line) => Number(line));
    expect(reported.length).to.be.at.least(300);

    const store = await temp.reopen();
    const stored = new Set((await store.readJournal("killed", 1, 1_000_000)).map((e) => e.index));
    const lost = reported.filter((index) => !stored.has(index));
    expect(lost, "commits reported as resolved but missing after the kill").to.deep.equal([]);
    expect(stored.size).to.be.at.least(reported.length);
  });
});
