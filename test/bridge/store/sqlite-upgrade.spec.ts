import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { expect } from "chai";
import type { Logger } from "../../../bridge/logger.js";
import { type MigrationProgress, migrate, SCHEMA_VERSION } from "../../../bridge/store/sqlite-schema.js";
import { createSqliteStore } from "../../../bridge/store/sqlite-store.js";

const SESSIONS = 60;
const ENTRIES_EACH = 12;
const ROWS = SESSIONS * ENTRIES_EACH;

/** The entry a version 3 journal holds at `idx` of session `s`: requests, numbered ones, and replies. */
function oldEntry(s: number, idx: number) {
  const reply = idx % 3 === 0;
  return {
    sessionId: `s${s}`,
    index: idx,
    messageId: `s${s}-m${idx}`,
    kind: reply ? 4 : 2,
    seq: !reply && idx % 2 === 0 ? idx / 2 : 0,
    inReplyTo: reply ? `s${s}-m${idx - 1}` : "",
    recordedAtMs: 10_000 + s * 100 + idx,
    envelope: Buffer.from([s & 0xff, idx & 0xff, 0x5a]),
  };
}

/** A version 3 database (before integer session keys), written in an order that mixes sessions. */
function writeVersion3(path: string): void {
  const db = new Database(path);
  try {
    migrate(db, 3);
    const insertSession = db.prepare(
      `INSERT INTO sessions (id, service, state, correlation, principal, created_at_ms, last_active_at_ms,
         idle_timeout_ms, max_lifetime_ms, next_seq, journal_length, written_at_idx)
       VALUES (?, 'shop.v1.Orders', 'active', '{}', 'alice', 1000, 1000, 60000, 3600000, 1, ?, ?)`,
    );
    const insertEntry = db.prepare(
      `INSERT INTO journal (session_id, idx, message_id, kind, seq, in_reply_to, recorded_at_ms, envelope)
       VALUES (@sessionId, @index, @messageId, @kind, @seq, @inReplyTo, @recordedAtMs, @envelope)`,
    );
    db.transaction(() => {
      for (let s = 0; s < SESSIONS; s++) insertSession.run(`s${s}`, ENTRIES_EACH, ENTRIES_EACH);
      // Round-robin, as sessions interleave in a real journal.
      for (let idx = 1; idx <= ENTRIES_EACH; idx++) {
        for (let s = 0; s < SESSIONS; s++) insertEntry.run(oldEntry(s, idx));
      }
    })();
  } finally {
    db.close();
  }
}

/** Where the rows are mid-way: the version, the old journal, the new one. */
function state(path: string): { version: number; old: number; moved: number } {
  const db = new Database(path, { readonly: true });
  try {
    const count = (table: string): number =>
      Number(db.prepare(`SELECT count(*) FROM ${table}`).pluck().get());
    return {
      version: Number(db.pragma("user_version", { simple: true })),
      old: count("journal"),
      moved: count("journal_by_key"),
    };
  } finally {
    db.close();
  }
}

describe("SQLite store: upgrading a large version 3 journal in batches", () => {
  let dir: string;
  let path: string;

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "sessionbridge-upgrade-"));
    path = join(dir, "sessions.db");
    writeVersion3(path);
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  /** Opens the store on the file, checks every row of every session, and what it logged. */
  async function expectEveryRow(): Promise<Array<{ fields: Record<string, unknown>; message: string }>> {
    const lines: Array<{ fields: Record<string, unknown>; message: string }> = [];
    const logger: Logger = {
      debug: () => {},
      info: (fields, message) => lines.push({ fields, message }),
      warn: () => {},
      error: () => {},
    };
    const store = await createSqliteStore({ path, logger });
    try {
      const db = new Database(path, { readonly: true });
      try {
        expect(db.pragma("user_version", { simple: true })).to.equal(SCHEMA_VERSION);
        expect(db.prepare("SELECT count(*) FROM journal").pluck().get()).to.equal(ROWS);
        expect(
          db.prepare("SELECT count(*) FROM sqlite_master WHERE name = 'journal_by_key'").pluck().get(),
        ).to.equal(0);
      } finally {
        db.close();
      }
      for (let s = 0; s < SESSIONS; s++) {
        const journal = await store.readJournal(`s${s}`, 1, 100);
        const expected = Array.from({ length: ENTRIES_EACH }, (_, i) => {
          const e = oldEntry(s, i + 1);
          return { ...e, envelope: new Uint8Array(e.envelope) };
        });
        expect(journal).to.deep.equal(expected);
      }
      // S7 and S8/S10 lookups on the indexes the migration filled.
      expect((await store.findBySeq("s7", 2))?.request.messageId).to.equal("s7-m4");
      const exchange = await store.findByMessageId("s9", "s9-m5");
      expect(exchange?.outcomes.map((e) => e.messageId)).to.deep.equal(["s9-m6"]);
      // The journal goes on where it was.
      await store.commit({
        entries: [{ ...oldEntry(3, ENTRIES_EACH + 1), envelope: new Uint8Array([1]) }],
      });
      expect(await store.readJournal("s3", ENTRIES_EACH + 1, 10)).to.have.length(1);
    } finally {
      await store.close();
    }
    return lines;
  }

  it("resumes an upgrade stopped between batches and ends with every row", async () => {
    const db = new Database(path);
    let batches = 0;
    expect(() =>
      migrate(db, {
        batchRows: 50,
        onProgress: () => {
          batches++;
          if (batches === 3) throw new Error("stopped between batches");
        },
      }),
    ).to.throw("stopped between batches");
    db.close();
    // Three batches moved, and left the old journal in the same transactions.
    expect(state(path)).to.deep.equal({ version: 3, old: ROWS - 150, moved: 150 });
    await expectEveryRow();
  });

  it("resumes an upgrade killed mid-way (kill -9) and ends with every row, saying how it went", async () => {
    const fixture = new URL("./fixtures/migrate-until-killed.js", import.meta.url);
    // Batches of 2 rows, 360 of them, 5 ms apart: long enough to be killed in the middle.
    const child = spawn(process.execPath, [fixture.pathname, path, "2", "5"], {
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
        // Killed a few batches in, with the next one under way.
        if (output.split("\n").length - 1 >= 4 && child.kill("SIGKILL")) resolve();
      });
      child.on("exit", () => resolve());
    });
    expect(await exited, "the child was killed, not finished").to.equal("SIGKILL");
    const reported = output
      .split("\n")
      .slice(0, -1)
      .map((line) => JSON.parse(line) as MigrationProgress);
    expect(reported.length).to.be.at.least(4);
    expect(reported.every((p) => !p.done)).to.equal(true);

    // Mid-way: every row in one of the two tables, at least what was reported moved.
    const killed = state(path);
    expect(killed.version).to.equal(3);
    expect(killed.old + killed.moved).to.equal(ROWS);
    expect(killed.moved).to.be.at.least(reported.at(-1)?.movedRows ?? Number.POSITIVE_INFINITY);
    expect(killed.old).to.be.above(0);

    const lines = await expectEveryRow();
    const done = lines.find((l) => l.message === "sqlite schema upgraded");
    expect(done?.fields).to.include({
      toVersion: 4,
      done: true,
      totalRows: killed.old,
      movedRows: killed.old,
    });
  });
});
