import path from "node:path";
import Database from "better-sqlite3";

export type SessionState = "live" | "closed" | "expired";

export interface LabSession {
  readonly id: string;
  readonly service: string;
  readonly state: SessionState;
  readonly log: readonly string[];
  readonly lastActiveMs: number;
  readonly createdMs: number;
  /** The last `sb-seq` applied, 0 before any (S7). */
  readonly lastSeq: number;
}

/** A recorded answer, replayed for a duplicate sequence number or message id (S7, S10). */
export interface RecordedOutcome {
  readonly code: number;
  readonly message: string;
  readonly reason: string;
  readonly details: readonly { typeUrl: string; value: string }[];
  readonly reply: string;
}

/**
 * The reference service's durable state in SQLite (synchronous=FULL): every change of a
 * message commits in one transaction before the answer goes out, so an answered message
 * survives kill -9 (S9, S10).
 */
export class LabStore {
  readonly #db: Database.Database;
  readonly incarnation: number;

  constructor(stateDir: string) {
    this.#db = new Database(path.join(stateDir, "lab.db"));
    this.#db.pragma("journal_mode = WAL");
    this.#db.pragma("synchronous = FULL");
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS sessions (
        id TEXT PRIMARY KEY, service TEXT NOT NULL, state TEXT NOT NULL, log TEXT NOT NULL,
        last_active_ms INTEGER NOT NULL, created_ms INTEGER NOT NULL, last_seq INTEGER NOT NULL);
      CREATE TABLE IF NOT EXISTS seq_outcomes (
        session_id TEXT NOT NULL, seq INTEGER NOT NULL, outcome TEXT NOT NULL, PRIMARY KEY (session_id, seq));
      CREATE TABLE IF NOT EXISTS deliveries (
        message_id TEXT PRIMARY KEY, count INTEGER NOT NULL, outcome TEXT);
    `);
    // Observed.incarnation: a case tells a restart happened by its increase.
    this.incarnation = this.#db.transaction(() => {
      const row = this.#db.prepare("SELECT value FROM meta WHERE key = 'incarnation'").get() as
        | { value: number }
        | undefined;
      const next = (row?.value ?? 0) + 1;
      this.#db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('incarnation', ?)").run(next);
      return next;
    })();
  }

  session(id: string): LabSession | undefined {
    const row = this.#db.prepare("SELECT * FROM sessions WHERE id = ?").get(id) as
      | {
          id: string;
          service: string;
          state: SessionState;
          log: string;
          last_active_ms: number;
          created_ms: number;
          last_seq: number;
        }
      | undefined;
    if (row === undefined) return undefined;
    return {
      id: row.id,
      service: row.service,
      state: row.state,
      log: JSON.parse(row.log) as string[],
      lastActiveMs: row.last_active_ms,
      createdMs: row.created_ms,
      lastSeq: row.last_seq,
    };
  }

  liveSessionsOf(service: string): string[] {
    const rows = this.#db
      .prepare("SELECT id FROM sessions WHERE service = ? AND state = 'live'")
      .all(service) as { id: string }[];
    return rows.map((r) => r.id);
  }

  /** Counts a delivery of a message id and returns the count, this one included. */
  countDelivery(messageId: string): number {
    return this.#db.transaction(() => {
      this.#db
        .prepare(
          "INSERT INTO deliveries (message_id, count) VALUES (?, 1) ON CONFLICT(message_id) DO UPDATE SET count = count + 1",
        )
        .run(messageId);
      return (
        this.#db.prepare("SELECT count FROM deliveries WHERE message_id = ?").get(messageId) as {
          count: number;
        }
      ).count;
    })();
  }

  outcomeOfMessage(messageId: string): RecordedOutcome | undefined {
    const row = this.#db.prepare("SELECT outcome FROM deliveries WHERE message_id = ?").get(messageId) as
      | { outcome: string | null }
      | undefined;
    return row?.outcome == null ? undefined : (JSON.parse(row.outcome) as RecordedOutcome);
  }

  outcomeOfSeq(sessionId: string, seq: number): RecordedOutcome | undefined {
    const row = this.#db
      .prepare("SELECT outcome FROM seq_outcomes WHERE session_id = ? AND seq = ?")
      .get(sessionId, seq) as { outcome: string } | undefined;
    return row === undefined ? undefined : (JSON.parse(row.outcome) as RecordedOutcome);
  }

  markExpired(id: string): void {
    this.#db.prepare("UPDATE sessions SET state = 'expired' WHERE id = ? AND state = 'live'").run(id);
  }

  /**
   * Commits one applied message: the session's new state and the outcome under its
   * sequence number and message id, atomically (S7, S9, S10).
   */
  commit(change: {
    readonly session?: LabSession;
    readonly seq?: number;
    readonly messageId?: string;
    readonly outcome: RecordedOutcome;
  }): void {
    this.#db.transaction(() => {
      const s = change.session;
      if (s !== undefined) {
        this.#db
          .prepare(
            `INSERT INTO sessions (id, service, state, log, last_active_ms, created_ms, last_seq) VALUES (?, ?, ?, ?, ?, ?, ?)
             ON CONFLICT(id) DO UPDATE SET state = excluded.state, log = excluded.log,
               last_active_ms = excluded.last_active_ms, last_seq = excluded.last_seq`,
          )
          .run(s.id, s.service, s.state, JSON.stringify(s.log), s.lastActiveMs, s.createdMs, s.lastSeq);
        if (change.seq !== undefined) {
          this.#db
            .prepare("INSERT OR REPLACE INTO seq_outcomes (session_id, seq, outcome) VALUES (?, ?, ?)")
            .run(s.id, change.seq, JSON.stringify(change.outcome));
        }
      }
      if (change.messageId !== undefined) {
        this.#db
          .prepare(
            "INSERT INTO deliveries (message_id, count, outcome) VALUES (?, 1, ?) ON CONFLICT(message_id) DO UPDATE SET outcome = excluded.outcome",
          )
          .run(change.messageId, JSON.stringify(change.outcome));
      }
    })();
  }

  close(): void {
    this.#db.close();
  }
}
