import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { JournalRecord, SessionRecord } from "../bridge/store/records.js";
import { type CommitRequest, createGroupApplier } from "../bridge/store/sqlite-apply.js";
import { openWriterConnection } from "../bridge/store/sqlite-connection.js";
import { migrate } from "../bridge/store/sqlite-schema.js";
import { benchSession } from "./store-session-record.js";

/**
 * CPU of the SQLite writer's own work per transaction, with the group size held fixed:
 * the applier (sqlite-apply.ts) on the writer connection (sqlite-connection.ts), in this
 * thread, on a real file with synchronous=FULL, committing groups of `group` commits of
 * the engine's shapes (a request entry with its session, then the outcome entry with its
 * session) round-robin over `sessions` sessions. Under real load the group size follows
 * the fsync latency of the moment, and CPU per call follows the group size; here it does
 * not, so two builds (or settings) compare on the same work.
 *
 *   node dist/bench/store-apply-cpu.js [sessions=64] [group=2] [transactions=5000] [rounds=3]
 *
 * Reports, per round, user and kernel CPU per transaction (process.cpuUsage: this thread
 * does all the work, Node's helper threads barely move) and wall time per transaction.
 */
const [sessionsArg, groupArg, transactionsArg, roundsArg] = process.argv.slice(2);
const sessionsCount = Number(sessionsArg ?? 64);
const group = Number(groupArg ?? 2);
const transactions = Number(transactionsArg ?? 5000);
const rounds = Number(roundsArg ?? 3);
const PAYLOAD_BYTES = 1024;

const dir = mkdtempSync(join(process.env.STORE_BENCH_DIR ?? tmpdir(), "sessionbridge-apply-"));
const db = openWriterConnection(join(dir, "sessions.db"), "full", 5000);
migrate(db);
const applier = createGroupApplier(db);
const now = Date.now();
const payload = new Uint8Array(PAYLOAD_BYTES).fill(0x5a);

const sessions: SessionRecord[] = Array.from({ length: sessionsCount }, (_, i) =>
  benchSession(`session-${i.toString().padStart(6, "0")}-0123456789abcdef`, `s${i}`, now),
);

const entry = (s: SessionRecord, kind: number, inReplyTo: string, seq: number): JournalRecord => ({
  sessionId: s.id,
  index: s.journalLength + 1,
  messageId: `${s.id}-${s.journalLength + 1}`,
  kind,
  seq,
  inReplyTo,
  recordedAtMs: now,
  envelope: payload,
});

// Start every session: its record and its started entry.
const started: CommitRequest[] = sessions.map((s, i) => {
  const first = entry(s, 0, "", 0);
  sessions[i] = { ...s, journalLength: 1 };
  return {
    type: "commit",
    batch: { sessions: [sessions[i] as SessionRecord], entries: [first] },
    sentAtMs: 0,
  };
});
applier.apply(started);

let turn = 0;
/** The next commit of the engine's per-call pair, for the next session in turn. */
const nextCommit = (): CommitRequest => {
  const at = turn++;
  const i = Math.floor(at / 2) % sessionsCount;
  const s = sessions[i] as SessionRecord;
  const isRequest = at % 2 === 0;
  const e = isRequest ? entry(s, 2, "", s.nextSeq) : entry(s, 4, `${s.id}-${s.journalLength}`, 0);
  const record: SessionRecord = {
    ...s,
    journalLength: e.index,
    nextSeq: isRequest ? s.nextSeq + 1 : s.nextSeq,
    lastActiveAtMs: now + at,
  };
  sessions[i] = record;
  return { type: "commit", batch: { sessions: [record], entries: [e] }, sentAtMs: 0 };
};

const runTransactions = (count: number): void => {
  for (let t = 0; t < count; t++) {
    const requests = Array.from({ length: group }, nextCommit);
    const { results } = applier.apply(requests);
    if (results.some((r) => !r.ok)) throw new Error(`a commit failed: ${JSON.stringify(results)}`);
  }
};

runTransactions(Math.min(1000, transactions));
for (let round = 1; round <= rounds; round++) {
  const cpu = process.cpuUsage();
  const wall = performance.now();
  runTransactions(transactions);
  const used = process.cpuUsage(cpu);
  const us = (n: number): string => (n / transactions).toFixed(1);
  console.log(
    `round ${round}: sessions ${sessionsCount} group ${group}: ` +
      `user ${us(used.user)} µs + kernel ${us(used.system)} µs = ${us(used.user + used.system)} µs CPU per transaction, ` +
      `${(((performance.now() - wall) * 1000) / transactions).toFixed(1)} µs wall`,
  );
}
db.close();
rmSync(dir, { recursive: true, force: true });
