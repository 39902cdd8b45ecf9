import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import Database from "better-sqlite3";
import { expect } from "chai";
import type { Logger } from "../../../bridge/logger.js";
import { createSqliteStore, type SqliteSessionStore } from "../../../bridge/store/sqlite-store.js";
import { ended, entry, session } from "./store-records.js";

const SESSIONS = 40;
const ENTRIES_EACH = 10;
/** Journal rows, session keys and session rows the backlog holds. */
const BACKLOG_ROWS = SESSIONS * (ENTRIES_EACH + 2);

interface LogLine {
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

describe("SQLite store: purge steps sized by their measured time", () => {
  let dir: string;
  let path: string;
  let stores: SqliteSessionStore[];
  let lines: LogLine[];

  const logger: Logger = {
    debug: () => {},
    info: (fields, message) => lines.push({ fields, message }),
    warn: () => {},
    error: () => {},
  };

  const open = async (purgeStepBudgetMs: number): Promise<SqliteSessionStore> => {
    const store = await createSqliteStore({ path, purgeStepBudgetMs, logger });
    stores.push(store);
    return store;
  };

  /** Ended sessions with their journals, all due for the purge, plus one live session (no journal yet, so no key). */
  const fillBacklog = async (store: SqliteSessionStore): Promise<void> => {
    for (let first = 0; first < SESSIONS; first += 10) {
      const ids = Array.from({ length: 10 }, (_, i) => `ended-${first + i}`);
      await store.commit({
        sessions: ids.map((id) => ended(session(id, { journalLength: ENTRIES_EACH }), 100)),
        entries: ids.flatMap((id) => Array.from({ length: ENTRIES_EACH }, (_, i) => entry(id, i + 1))),
      });
    }
    await store.commit({ sessions: [session("live")] });
  };

  /** Rows left in the database file, read on a connection of its own. */
  const remaining = (): Record<string, number> => {
    const db = new Database(path, { readonly: true });
    try {
      const count = (table: string): number =>
        Number(db.prepare(`SELECT count(*) FROM ${table}`).pluck().get());
      return {
        sessions: count("sessions"),
        keys: count("session_keys"),
        journal: count("journal"),
      };
    } finally {
      db.close();
    }
  };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "sessionbridge-purge-"));
    path = join(dir, "sessions.db");
    stores = [];
    lines = [];
  });

  afterEach(async () => {
    for (const store of stores) await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("shrinks its steps to a row or so when every step overruns a tiny budget, and still removes every row", async () => {
    // A budget no step can keep: after each step the next one is cut, down to one row.
    const store = await open(0.000_001);
    await fillBacklog(store);
    expect(await store.purge(1_000, 0)).to.deep.equal({ sessions: SESSIONS, idempotency: 0 });
    const stats = store.stats();
    expect(stats.purgeRows, "rows deleted").to.equal(BACKLOG_ROWS);
    // One-row steps, except the last step of a session, which also takes its key and row.
    expect(stats.purgeSteps, "steps").to.be.at.least(BACKLOG_ROWS / 3);
    expect(stats.purgeStepsOver10Ms).to.be.at.most(stats.purgeSteps);
    await store.close();
    expect(remaining()).to.deep.equal({ sessions: 1, keys: 0, journal: 0 });
  });

  it("grows its steps while they finish well under a generous budget", async () => {
    const store = await open(10_000);
    await fillBacklog(store);
    expect(await store.purge(1_000, 0)).to.deep.equal({ sessions: SESSIONS, idempotency: 0 });
    const stats = store.stats();
    expect(stats.purgeRows).to.equal(BACKLOG_ROWS);
    // 8, 16, 32, 64, 128, 256 rows: six steps where one-row steps would take hundreds.
    expect(stats.purgeSteps, "steps").to.be.at.most(8);
    await store.close();
    expect(remaining()).to.deep.equal({ sessions: 1, keys: 0, journal: 0 });
  });

  it("commits a write sent while a purge runs before the purge ends", async () => {
    const store = await open(0.000_001);
    await fillBacklog(store);
    let purgeEnded = false;
    const purging = store.purge(1_000, 0).then((counts) => {
      purgeEnded = true;
      return counts;
    });
    // Wait until the purge is under way, then write: the write goes in between two steps.
    while (store.stats().purgeSteps < 5) await new Promise((resolve) => setTimeout(resolve, 1));
    await store.commit({ entries: [entry("live", 1)] });
    const stepsBeforeTheWrite = store.stats().purgeSteps;
    expect(purgeEnded, "the purge had ended before the write committed").to.equal(false);
    expect(await purging).to.deep.equal({ sessions: SESSIONS, idempotency: 0 });
    expect(store.stats().purgeSteps).to.be.above(stepsBeforeTheWrite);
    expect(await store.readJournal("live", 1, 10)).to.have.length(1);
  });

  it("logs each purge with its steps, rows and the longest step", async () => {
    const store = await open(10_000);
    await fillBacklog(store);
    await store.purge(1_000, 0);
    const line = lines.find((l) => l.message === "sqlite purge finished");
    expect(line?.fields).to.include({ sessions: SESSIONS, idempotency: 0, rows: BACKLOG_ROWS });
    expect(line?.fields.steps).to.equal(store.stats().purgeSteps);
    expect(line?.fields.longestStepMs).to.be.a("number");
    expect(line?.fields.longestDelayMs).to.be.a("number");
  });

  it("refuses a step budget that is not a positive number", async () => {
    for (const purgeStepBudgetMs of [0, -1, Number.NaN, Number.POSITIVE_INFINITY]) {
      const opening = createSqliteStore({ path, purgeStepBudgetMs });
      await opening.then(
        (store) => {
          stores.push(store);
          expect.fail(`opened with purgeStepBudgetMs ${purgeStepBudgetMs}`);
        },
        (error: unknown) => expect(error).to.have.property("reason", "INVALID_CONFIG"),
      );
    }
  });
});
