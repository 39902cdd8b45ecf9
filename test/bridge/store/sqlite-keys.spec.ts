import Database from "better-sqlite3";
import { expect } from "chai";
import { exchangeKey } from "../../../bridge/store/sqlite-exchange-key.js";
import { migrate, SCHEMA_VERSION } from "../../../bridge/store/sqlite-schema.js";
import { createSqliteStore } from "../../../bridge/store/sqlite-store.js";
import { openTempSqlite, type TempSqlite } from "./sqlite-fixture.js";
import { ended, entry, idempotency, session } from "./store-records.js";

/** Runs `read` on a read-only connection of its own. */
function inspect<T>(path: string, read: (db: Database.Database) => T): T {
  const db = new Database(path, { readonly: true });
  try {
    return read(db);
  } finally {
    db.close();
  }
}

describe("SQLite store: integer session keys in the journal", () => {
  let temp: TempSqlite;

  beforeEach(async () => {
    temp = await openTempSqlite();
  });

  afterEach(async () => {
    await temp.cleanup();
  });

  it("upgrades a version 3 database in place: journals, lookups, outbox, idempotency and purge", async () => {
    const path = `${temp.dir}/v3.db`;
    const v3 = new Database(path);
    migrate(v3, 3);
    const insertSession = v3.prepare(
      `INSERT INTO sessions (id, service, state, end_reason, correlation, correlation_key, principal, created_at_ms,
         last_active_at_ms, ended_at_ms, idle_timeout_ms, max_lifetime_ms, next_seq, journal_length, written_at_idx)
       VALUES (?, 'shop.v1.Orders', ?, ?, '{}', ?, 'alice', 1000, ?, ?, 60000, 3600000, ?, ?, ?)`,
    );
    insertSession.run("s1", "active", null, "k1", 1_000, null, 1, 1, 1);
    insertSession.run("s2", "closed", "closed", null, 1_000, 500, 1, 2, 2);
    const insertEntry = v3.prepare(
      `INSERT INTO journal (session_id, idx, message_id, kind, seq, in_reply_to, recorded_at_ms, envelope)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    // s1: a start, a numbered request and its response, a one-way message not yet delivered.
    insertEntry.run("s1", 1, "start", 1, 0, "", 1_001, Buffer.from([1]));
    insertEntry.run("s1", 2, "req", 2, 1, "", 1_002, Buffer.from([2]));
    insertEntry.run("s1", 3, "resp", 4, 0, "req", 1_003, Buffer.from([3]));
    insertEntry.run("s1", 4, "note", 3, 0, "", 1_004, Buffer.from([4]));
    // s2 ended long ago; "busy" has a journal and no session row.
    insertEntry.run("s2", 1, "s2-start", 1, 0, "", 1_001, Buffer.from([5]));
    insertEntry.run("s2", 2, "s2-end", 1, 0, "", 1_002, Buffer.from([6]));
    insertEntry.run("busy", 1, "b1", 1, 0, "", 1_005, Buffer.from([7]));
    v3.prepare("INSERT INTO outbox (session_id, message_id, idx) VALUES ('s1', 'note', 4)").run();
    const insertIdempotency = v3.prepare(
      `INSERT INTO idempotency (principal, key, request_hash, operation, session_id, message_id, created_at_ms, outcome)
       VALUES ('alice', ?, 'h', '/shop.v1.Orders/Place', 's1', 'req', 1002, ?)`,
    );
    insertIdempotency.run("done", Buffer.from([3]));
    insertIdempotency.run("running", null);
    v3.close();

    const store = await createSqliteStore({ path });
    try {
      expect(inspect(path, (db) => db.pragma("user_version", { simple: true }))).to.equal(SCHEMA_VERSION);
      const s1 = session("s1", { correlationKey: "k1", journalLength: 4, nextSeq: 2, lastActiveAtMs: 1_004 });
      expect(await store.getSession("s1")).to.deep.equal(s1);
      expect(await store.findSessionByCorrelation("shop.v1.Orders", "k1")).to.deep.equal(s1);
      const journal = await store.readJournal("s1", 1, 10);
      expect(
        journal.map((e) => [e.sessionId, e.index, e.messageId, e.kind, e.seq, e.inReplyTo]),
      ).to.deep.equal([
        ["s1", 1, "start", 1, 0, ""],
        ["s1", 2, "req", 2, 1, ""],
        ["s1", 3, "resp", 4, 0, "req"],
        ["s1", 4, "note", 3, 0, ""],
      ]);
      expect([...(journal[2]?.envelope ?? [])]).to.deep.equal([3]);
      // S7, S8, S10 lookups on the rebuilt indexes.
      const byId = await store.findByMessageId("s1", "req");
      expect(byId?.request.index).to.equal(2);
      expect(byId?.outcomes.map((e) => e.messageId)).to.deep.equal(["resp"]);
      expect((await store.findBySeq("s1", 1))?.outcomes.map((e) => e.index)).to.deep.equal([3]);
      expect(await store.findByMessageId("s1", "resp")).to.equal(undefined);
      expect((await store.recover()).outbox).to.deep.equal([
        { sessionId: "s1", messageId: "note", index: 4 },
      ]);
      expect((await store.getIdempotency("alice", "done"))?.outcome).to.deep.equal(new Uint8Array([3]));
      expect((await store.getIdempotency("alice", "running"))?.outcome).to.equal(undefined);
      expect((await store.readJournal("busy", 1, 10)).map((e) => e.messageId)).to.deep.equal(["b1"]);
      expect(inspect(path, (db) => db.prepare("SELECT count(*) AS n FROM session_keys").get())).to.deep.equal(
        {
          n: 3,
        },
      );

      // The journal goes on where it was, and the ended session is purged with its key.
      await store.commit({
        sessions: [{ ...s1, journalLength: 5, lastActiveAtMs: 1_010 }],
        entries: [entry("s1", 5, { recordedAtMs: 1_010 })],
      });
      expect((await store.readJournal("s1", 5, 10)).map((e) => e.index)).to.deep.equal([5]);
      expect(await store.purge(1_000, 0)).to.deep.equal({ sessions: 1, idempotency: 0 });
      expect(await store.readJournal("s2", 1, 10)).to.deep.equal([]);
      expect(
        inspect(path, (db) => db.prepare("SELECT id FROM session_keys ORDER BY id").pluck().all()),
      ).to.deep.equal(["busy", "s1"]);
    } finally {
      await store.close();
    }
  });

  it("keeps only integers in the journal's index entries", async () => {
    const id = "a-session-id-of-the-usual-length-0123456789";
    await temp.store.commit({
      sessions: [session(id, { journalLength: 2 })],
      entries: [
        entry(id, 1, { messageId: "a-message-id-of-the-usual-length-0123456789", seq: 1 }),
        entry(id, 2, {
          messageId: "another-message-id-of-the-usual-length",
          inReplyTo: "a-message-id-of-the-usual-length-0123456789",
        }),
      ],
    });
    const columns = inspect(temp.path, (db) =>
      Object.fromEntries(
        ["sqlite_autoindex_journal_1", "journal_exchange", "journal_seq"].map((index) => [
          index,
          (db.pragma(`index_info(${index})`) as { name: string }[]).map((c) => c.name),
        ]),
      ),
    );
    expect(columns).to.deep.equal({
      sqlite_autoindex_journal_1: ["session_key", "idx"],
      journal_exchange: ["session_key", "exchange", "idx"],
      journal_seq: ["session_key", "seq", "idx"],
    });
    // Both entries of the exchange are under the hash of the request's id.
    expect(
      inspect(temp.path, (db) => db.prepare("SELECT DISTINCT exchange FROM journal").pluck().all()),
    ).to.deep.equal([exchangeKey("a-message-id-of-the-usual-length-0123456789")]);
  });

  it("finds the right exchange when two message ids share a hash", async () => {
    // Not two real ids with the same hash: every entry rewritten under the hash of "m-a",
    // as a collision would leave them, so the lookup must tell the exchanges apart by text.
    await temp.store.commit({
      sessions: [session("s1", { journalLength: 4 })],
      entries: [
        entry("s1", 1, { messageId: "m-a" }),
        entry("s1", 2, { messageId: "m-b" }),
        entry("s1", 3, { messageId: "r-b", inReplyTo: "m-b" }),
        entry("s1", 4, { messageId: "r-a", inReplyTo: "m-a" }),
      ],
    });
    await temp.store.close();
    const db = new Database(temp.path);
    db.prepare("UPDATE journal SET exchange = ?").run(exchangeKey("m-a"));
    db.close();
    const store = await temp.reopen();
    const a = await store.findByMessageId("s1", "m-a");
    expect([a?.request.messageId, a?.outcomes.map((e) => e.messageId)]).to.deep.equal(["m-a", ["r-a"]]);
  });
});

describe("SQLite store: an idempotency outcome is stored once (S8)", () => {
  let temp: TempSqlite;

  beforeEach(async () => {
    temp = await openTempSqlite();
  });

  afterEach(async () => {
    await temp.cleanup();
  });

  const outcomeColumns = (path: string): unknown =>
    inspect(path, (db) => db.prepare("SELECT outcome, outcome_idx FROM idempotency").get());

  /** The engine's two commits of a keyed call: accepted, then answered. */
  const keyedCall = async (store: TempSqlite["store"], sessionId: string, envelope: Uint8Array) => {
    const record = idempotency("alice", "key-1", { sessionId, messageId: "req", createdAtMs: 2_000 });
    await store.commit({
      sessions: [session(sessionId, { journalLength: 1 })],
      entries: [entry(sessionId, 1, { messageId: "req" })],
      idempotency: [record],
    });
    await store.commit({
      sessions: [session(sessionId, { journalLength: 2 })],
      entries: [entry(sessionId, 2, { messageId: "resp", inReplyTo: "req", envelope })],
      idempotency: [{ ...record, outcome: envelope }],
    });
    return record;
  };

  it("points at the outcome entry instead of a second copy, and reads it from there", async () => {
    const envelope = new Uint8Array(600).fill(0x42);
    const record = await keyedCall(temp.store, "s1", envelope);
    expect(outcomeColumns(temp.path)).to.deep.equal({ outcome: null, outcome_idx: 2 });
    expect(await temp.store.getIdempotency("alice", "key-1")).to.deep.equal({ ...record, outcome: envelope });
    const store = await temp.reopen();
    expect((await store.getIdempotency("alice", "key-1"))?.outcome).to.deep.equal(envelope);
  });

  it("stores an outcome that is no entry of the batch as bytes", async () => {
    const record = idempotency("alice", "key-1", {
      sessionId: "s1",
      messageId: "req",
      outcome: new Uint8Array([9]),
    });
    await temp.store.commit({
      entries: [entry("s1", 1, { messageId: "resp", inReplyTo: "req" })],
      idempotency: [record],
    });
    expect(outcomeColumns(temp.path)).to.deep.equal({ outcome: Buffer.from([9]), outcome_idx: null });
    expect(await temp.store.getIdempotency("alice", "key-1")).to.deep.equal(record);
  });

  it("copies the outcome into a record kept longer than its session's journal", async () => {
    const envelope = new Uint8Array(600).fill(0x17);
    await keyedCall(temp.store, "s1", envelope);
    await temp.store.commit({ sessions: [ended(session("s1", { journalLength: 2 }), 3_000)] });
    // Sessions ended before 5,000 go; idempotency records created before 1,000 go (none).
    expect(await temp.store.purge(5_000, 1_000)).to.deep.equal({ sessions: 1, idempotency: 0 });
    expect(await temp.store.readJournal("s1", 1, 10)).to.deep.equal([]);
    expect(outcomeColumns(temp.path)).to.deep.equal({ outcome: Buffer.from(envelope), outcome_idx: null });
    expect((await temp.store.getIdempotency("alice", "key-1"))?.outcome).to.deep.equal(envelope);
  });

  it("purges a record and its session's journal together when both are due", async () => {
    await keyedCall(temp.store, "s1", new Uint8Array([1, 2, 3]));
    await temp.store.commit({ sessions: [ended(session("s1", { journalLength: 2 }), 3_000)] });
    expect(await temp.store.purge(5_000, 5_000)).to.deep.equal({ sessions: 1, idempotency: 1 });
    expect(await temp.store.getIdempotency("alice", "key-1")).to.equal(undefined);
  });
});
