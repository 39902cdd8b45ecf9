import { mkdtempSync, rmSync } from "node:fs";
import { cpus, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import type { JournalRecord, SessionRecord } from "../bridge/store/records.js";
import { createSqliteStore } from "../bridge/store/sqlite-store.js";

/**
 * How long commits wait while the SQLite store purges a large backlog: ended sessions
 * with their journals (1 KiB entries), purged while calls keep committing at a fixed
 * rate (request entry + session, then outcome entry + session, as the engine does).
 * Reports the commit latency before and during the purge, the longest commit, how long
 * the purge took, its steps (how many, the longest a step held the writer) and the delay
 * the purge added to commits as the writer measured it: for each commit, the time it
 * waited for a purge step (the rest of one running when it arrived, or the one in its own
 * transaction). The machine's load average is printed with them: on a shared machine a
 * step can take long because the writer thread waits for a core.
 *
 *   npm run build && node dist/bench/store-purge-stall.js
 *
 * Settings (environment): STORE_PURGE_SESSIONS (9000 ended sessions), STORE_PURGE_ENTRIES
 * (19 journal entries each: ~170k rows), STORE_PURGE_RATE (300 calls/s),
 * STORE_PURGE_BUDGET_MS (the store's purgeStepBudgetMs, default its own), STORE_BENCH_DIR
 * (default: the OS temp directory).
 */

const endedCount = setting("STORE_PURGE_SESSIONS", 9_000);
const entriesEach = setting("STORE_PURGE_ENTRIES", 19);
const rate = setting("STORE_PURGE_RATE", 300);
const liveCount = 1_000;
const baseDir = process.env.STORE_BENCH_DIR ?? tmpdir();
const budget = process.env.STORE_PURGE_BUDGET_MS;
const purgeStepBudgetMs = budget === undefined ? {} : { purgeStepBudgetMs: Number(budget) };

function setting(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
  return value;
}

const envelope = new Uint8Array(1024).map((_, i) => (i * 31) & 0xff);
const session = (id: string, fields: Partial<SessionRecord> = {}): SessionRecord => ({
  id,
  service: "bench.v1.Echo",
  state: "active",
  endReason: undefined,
  correlationSet: undefined,
  correlation: {},
  correlationKey: undefined,
  principal: "anonymous",
  createdAtMs: 1_000,
  lastActiveAtMs: 1_000,
  endedAtMs: undefined,
  idleTimeoutMs: 1_800_000,
  maxLifetimeMs: 86_400_000,
  nextSeq: 1,
  journalLength: 0,
  ...fields,
});
const entry = (sessionId: string, index: number, inReplyTo = ""): JournalRecord => ({
  sessionId,
  index,
  messageId: `${sessionId}-${index}`,
  kind: inReplyTo === "" ? 2 : 4,
  seq: 0,
  inReplyTo,
  recordedAtMs: 2_000,
  envelope,
});

const dir = mkdtempSync(join(baseDir, "sessionbridge-purge-"));
const store = await createSqliteStore({ path: join(dir, "sessions.db"), ...purgeStepBudgetMs });

for (let first = 0; first < endedCount; first += 100) {
  const ids = Array.from({ length: Math.min(100, endedCount - first) }, (_, i) => `ended-${first + i}`);
  await store.commit({
    sessions: ids.map((id) =>
      session(id, { state: "closed", endReason: "closed", endedAtMs: 5_000, journalLength: entriesEach }),
    ),
    entries: ids.flatMap((id) => Array.from({ length: entriesEach }, (_, i) => entry(id, i + 1))),
  });
}
const live = Array.from({ length: liveCount }, (_, i) => session(`live-${i}`));
await store.commit({ sessions: live });

const latencies = { before: [] as number[], during: [] as number[] };
let phase: "before" | "during" | "after" = "before";
const busy = new Map<string, Promise<void>>();

const call = async (s: SessionRecord): Promise<void> => {
  for (const reply of [false, true]) {
    const index = s.journalLength + 1;
    const record = { ...s, journalLength: index };
    Object.assign(s, { journalLength: index });
    const started = performance.now();
    const during = phase;
    await store.commit({
      sessions: [record],
      entries: [entry(s.id, index, reply ? `${s.id}-${index - 1}` : "")],
    });
    if (during !== "after") latencies[during].push(performance.now() - started);
  }
};

const drive = async (seconds: number | (() => boolean)): Promise<void> => {
  const startedAt = performance.now();
  const pending: Promise<void>[] = [];
  for (let n = 0; ; n++) {
    const due = startedAt + (n * 1000) / rate;
    if (typeof seconds === "number" ? due - startedAt > seconds * 1000 : seconds()) break;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
    const s = live[n % liveCount];
    if (s === undefined) continue;
    const turn = (busy.get(s.id) ?? Promise.resolve()).then(() => call(s));
    busy.set(s.id, turn);
    pending.push(turn);
  }
  await Promise.all(pending);
};

await drive(3);
const loadAtStart = loadavg();
phase = "during";
let purgeDone = false;
const purgeStarted = performance.now();
let purgeMs = 0;
const purging = store.purge(10_000, 0).then((counts) => {
  purgeMs = performance.now() - purgeStarted;
  purgeDone = true;
  return counts;
});
await drive(() => purgeDone);
phase = "after";
const counts = await purging;
const loadAtEnd = loadavg();
const stats = store.stats();
await store.close();
rmSync(dir, { recursive: true, force: true });

const summary = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const at = (q: number) =>
    Number((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(2));
  return { commits: values.length, p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1) };
};
console.log(
  JSON.stringify(
    {
      purged: counts,
      journalRowsPurged: endedCount * entriesEach,
      purgeMs: Math.round(purgeMs),
      purgeSteps: stats.purgeSteps,
      purgeRows: stats.purgeRows,
      meanRowsPerStep: Math.round(stats.purgeRows / Math.max(1, stats.purgeSteps)),
      purgeStepMsTotal: Math.round(stats.purgeStepMs),
      // The longest a step held the writer; steps over 10 ms are mostly the thread
      // descheduled on a loaded machine.
      longestPurgeStepMs: Number(stats.longestPurgeStepMs.toFixed(2)),
      purgeStepsOver10Ms: stats.purgeStepsOver10Ms,
      // What commits waited for purge steps, as the writer measured it.
      commitsDelayedByPurge: stats.purgeDelayedCommits,
      longestPurgeDelayMs: Number(stats.longestPurgeDelayMs.toFixed(2)),
      purgeDelaysOver10Ms: stats.purgeDelaysOver10Ms,
      commitsBeforePurge: summary(latencies.before),
      commitsDuringPurge: summary(latencies.during),
      loadAverage1m: { atPurgeStart: loadAtStart[0], atPurgeEnd: loadAtEnd[0] },
      cores: cpus().length,
    },
    null,
    2,
  ),
);
