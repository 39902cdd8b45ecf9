import Database from "better-sqlite3";
import { expect } from "chai";
import type { JournalRecord, SessionRecord } from "../../../bridge/store/records.js";
import { MAX_STEP_ROWS } from "../../../bridge/store/sqlite-purge-pace.js";
import { migrate } from "../../../bridge/store/sqlite-schema.js";
import { createSqliteStore } from "../../../bridge/store/sqlite-store.js";
import { openTempSqlite, type TempSqlite } from "./sqlite-fixture.js";
import { walFrames } from "./sqlite-wal-frames.js";
import { entry, session } from "./store-records.js";

/** Deterministic bytes, so every run writes the same pages. */
function bytes(length: number, seed: number): Uint8Array {
  let x = seed | 1;
  return Uint8Array.from({ length }, () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return x & 0xff;
  });
}

describe("SQLite store: what a commit writes", () => {
  let temp: TempSqlite;

  beforeEach(async () => {
    temp = await openTempSqlite();
  });

  afterEach(async () => {
    await temp.cleanup();
  });

  it("keeps a call's two commits under 10.5 KiB of WAL (write amplification)", async () => {
    // The engine's commit shapes: the request with its outbox item, then the outcome that
    // takes it out again; every commit carries the session record, moved on (S9, S10).
    const live: SessionRecord[] = [];
    for (let first = 0; first < 2_000; first += 200) {
      const sessions = Array.from({ length: 200 }, (_, i) =>
        session(`session-${String(first + i).padStart(5, "0")}-0123456789abcdef`, { journalLength: 1 }),
      );
      await temp.store.commit({ sessions, entries: sessions.map((s) => entry(s.id, 1)) });
      live.push(...sessions);
    }
    const calls = 300;
    const before = walFrames(temp.path);
    for (let n = 0; n < calls; n++) {
      const slot = (n * 7919) % live.length;
      const s = live[slot] as SessionRecord;
      const at = 10_000 + n * 10;
      const request: JournalRecord = entry(s.id, s.journalLength + 1, {
        kind: 2,
        recordedAtMs: at,
        envelope: bytes(1_100, n),
      });
      const accepted = { ...s, journalLength: request.index };
      await temp.store.commit({
        sessions: [accepted],
        entries: [request],
        outboxAdd: [{ sessionId: s.id, messageId: request.messageId, index: request.index }],
      });
      const outcome: JournalRecord = entry(s.id, request.index + 1, {
        kind: 4,
        inReplyTo: request.messageId,
        recordedAtMs: at + 1,
        envelope: bytes(1_100, n + 1),
      });
      const answered = { ...accepted, journalLength: outcome.index, lastActiveAtMs: at + 1 };
      await temp.store.commit({
        sessions: [answered],
        entries: [outcome],
        outboxRemove: [{ sessionId: s.id, messageId: request.messageId }],
      });
      live[slot] = answered;
    }
    const frames = walFrames(temp.path) - before;
    const db = new Database(temp.path, { readonly: true });
    const pageBytes = Number(db.pragma("page_size", { simple: true }));
    db.close();
    expect(frames, "the WAL was reset by a checkpoint during the test").to.be.greaterThan(0);
    // A frame is a page and its 24-byte header. With a session row rewritten by every
    // commit, an outbox order index and 1 KiB pages, a call wrote about 16.4 KB; with text
    // ids in the journal's index keys, 12.2 KB (22.7 frames); with integer keys, 9.4 KB
    // (17.6 frames).
    const walBytesPerCall = (frames * (pageBytes + 24)) / calls;
    expect(walBytesPerCall).to.be.lessThan(10.5 * 1024);
    // And what the sessions read back is still exact.
    const last = live[(299 * 7919) % live.length] as SessionRecord;
    expect(await temp.store.getSession(last.id)).to.deep.equal(last);
  });

  it("reads the hot fields of a session from its journal past the row's last write", async () => {
    const s = session("s1", { correlationKey: "k1", journalLength: 1 });
    await temp.store.commit({ sessions: [s], entries: [entry("s1", 1)] });
    // Two numbered requests and an answer, each commit carrying the moved-on record.
    const r1 = { ...s, journalLength: 2, nextSeq: 2, lastActiveAtMs: 2_002 };
    await temp.store.commit({ sessions: [r1], entries: [entry("s1", 2, { seq: 1 })] });
    const r2 = { ...r1, journalLength: 3, lastActiveAtMs: 2_003 };
    await temp.store.commit({ sessions: [r2], entries: [entry("s1", 3, { inReplyTo: "s1-m2" })] });
    const r3 = { ...r2, journalLength: 4, nextSeq: 3, lastActiveAtMs: 2_004 };
    await temp.store.commit({ sessions: [r3], entries: [entry("s1", 4, { seq: 2 })] });

    const raw = (): unknown => {
      const db = new Database(temp.path, { readonly: true });
      try {
        return db.prepare("SELECT journal_length, next_seq, written_at_idx FROM sessions").get();
      } finally {
        db.close();
      }
    };
    // The row was written once, at start; the journal carries the rest.
    expect(raw()).to.deep.equal({ journal_length: 1, next_seq: 1, written_at_idx: 1 });
    expect(await temp.store.getSession("s1")).to.deep.equal(r3);
    expect(await temp.store.findSessionByCorrelation(s.service, "k1")).to.deep.equal(r3);
    expect((await temp.store.listSessions({ pageSize: 10 })).sessions).to.deep.equal([r3]);
    expect((await temp.store.recover()).sessions).to.deep.equal([r3]);

    // A record the journal cannot tell (a number given back after a failed commit) is
    // written; so is an end (S12).
    const givenBack = { ...r3, nextSeq: 2 };
    await temp.store.commit({ sessions: [givenBack] });
    expect(await temp.store.getSession("s1")).to.deep.equal(givenBack);
    const closed = { ...givenBack, state: "closed" as const, endReason: "closed" as const, endedAtMs: 3_000 };
    await temp.store.commit({ sessions: [closed], entries: [entry("s1", 5)] });
    const store = await temp.reopen();
    expect(await store.getSession("s1")).to.deep.equal({ ...closed, journalLength: 4 });
  });

  it("carries the session rows of a version 2 database as they were written", async () => {
    const path = `${temp.dir}/v2.db`;
    const v2 = new Database(path);
    migrate(v2, 2);
    v2.prepare(
      `INSERT INTO sessions (id, service, state, correlation, principal, created_at_ms, last_active_at_ms,
         idle_timeout_ms, max_lifetime_ms, next_seq, journal_length)
       VALUES ('s1', 'shop.v1.Orders', 'active', '{}', 'alice', 1000, 1500, 60000, 3600000, 4, 7)`,
    ).run();
    const insert = v2.prepare(
      `INSERT INTO journal (session_id, idx, message_id, kind, seq, in_reply_to, recorded_at_ms, envelope)
       VALUES ('s1', ?, ?, 1, ?, '', 1400, x'01')`,
    );
    for (let idx = 1; idx <= 7; idx++) insert.run(idx, `m${idx}`, idx <= 3 ? idx : 0);
    v2.prepare(
      "INSERT INTO outbox (session_id, message_id, idx) VALUES ('s1', 'm7', 7), ('s1', 'm5', 5)",
    ).run();
    v2.close();

    const store = await createSqliteStore({ path });
    try {
      const expected = session("s1", { lastActiveAtMs: 1_500, nextSeq: 4, journalLength: 7 });
      expect(await store.getSession("s1")).to.deep.equal(expected);
      expect(await store.recover()).to.deep.equal({
        sessions: [expected],
        outbox: [
          { sessionId: "s1", messageId: "m5", index: 5 },
          { sessionId: "s1", messageId: "m7", index: 7 },
        ],
      });
      const next = { ...expected, journalLength: 8, lastActiveAtMs: 1_600 };
      await store.commit({ sessions: [next], entries: [entry("s1", 8, { recordedAtMs: 1_600 })] });
      expect(await store.getSession("s1")).to.deep.equal(next);
    } finally {
      await store.close();
    }
  });
});

describe("SQLite store: purging a large backlog", () => {
  let temp: TempSqlite;

  beforeEach(async () => {
    temp = await openTempSqlite();
  });

  afterEach(async () => {
    await temp.cleanup();
  });

  it("lets commits through between purge steps while it works off a large backlog", async () => {
    // 600 ended sessions with 40 entries each: 25,200 rows with their keys and session rows.
    for (let first = 0; first < 600; first += 50) {
      const ids = Array.from({ length: 50 }, (_, i) => `ended-${first + i}`);
      await temp.store.commit({
        sessions: ids.map((id) => ({
          ...session(id, { journalLength: 40 }),
          state: "closed" as const,
          endReason: "closed" as const,
          endedAtMs: 100,
        })),
        entries: ids.flatMap((id) => Array.from({ length: 40 }, (_, i) => entry(id, i + 1))),
      });
    }
    let purged: { sessions: number } | undefined;
    const purging = temp.store.purge(1_000, 0).then((counts) => {
      purged = counts;
    });
    // One commit after another, as long as the purge runs: each goes through between two
    // steps, so some complete before the purge does (as one transaction, none would).
    // How many depends on how the machine shares its cores between this thread and the
    // writer, so the floor is low.
    let committedDuringPurge = 0;
    let index = 0;
    while (purged === undefined) {
      await temp.store.commit({ entries: [entry("busy", ++index)] });
      if (purged === undefined) committedDuringPurge++;
    }
    await purging;
    expect(purged).to.deep.include({ sessions: 600 });
    // Steps grow while they stay under their time budget (sqlite-purge-pace.ts), but
    // never past MAX_STEP_ROWS: the backlog takes several.
    const { purgeSteps, purgeRows } = temp.store.stats();
    expect(purgeRows, "rows purged").to.equal(600 * 42);
    expect(purgeSteps, "the backlog took several steps").to.be.at.least(Math.ceil(purgeRows / MAX_STEP_ROWS));
    expect(committedDuringPurge, "commits completed between purge steps").to.be.at.least(2);
    expect(await temp.store.readJournal("busy", 1, 1_000)).to.have.length(index);
    expect((await temp.store.listSessions({ pageSize: 10 })).sessions).to.deep.equal([]);
  });
});
