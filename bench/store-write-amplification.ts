import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, statSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createMemoryStore } from "../bridge/store/memory-store.js";
import type { JournalRecord, SessionRecord } from "../bridge/store/records.js";
import type { SessionStore, StoreBatch } from "../bridge/store/session-store.js";
import { createSqliteStore, type SqliteSessionStore } from "../bridge/store/sqlite-store.js";
import { benchSession } from "./store-session-record.js";
import { sampleThreads, threadDeltas } from "./store-thread-cpu.js";
import { walPagesByBtree } from "./store-wal-pages.js";

/**
 * Write amplification of the SQLite store: bytes the process makes the kernel write
 * (/proc/self/io write_bytes; the writer is a thread of this process) per byte the
 * database grows, under the commits the engine makes for a call: the request entry with
 * the session touched, then the outcome entry with the session touched; some calls also
 * carry an idempotency record (recorded with the request, answered with the outcome) and
 * some are one-way (outbox add, then remove with the ACK).
 *
 *   npm run build && node dist/bench/store-write-amplification.js
 *
 * Settings (environment): STORE_BENCH_SESSIONS (10000 live sessions), STORE_BENCH_CALLS
 * (6000), STORE_BENCH_RATE (300 calls/s), STORE_BENCH_PAYLOAD_BYTES (1024),
 * STORE_BENCH_DIR (a directory on the disk to measure; default the OS temp directory,
 * which must not be tmpfs: tmpfs writes never reach a storage layer and count as 0),
 * STORE_BENCH_STORE (sqlite, or memory: the same driver on the memory store, whose CPU
 * per call is the driver's own and the baseline the SQLite figure is read against),
 * STORE_BENCH_SHARED (1: a session's calls do not take turns, as a shared operation's
 * do not (S6); with STORE_BENCH_SESSIONS=1, the bench's shared rows: every commit is the
 * one session's, and a group holds as many of them as were made during one fsync).
 *
 * CPU is also reported per thread (/proc/self/task/<tid>/stat, user and kernel, with the
 * voluntary context switches: wake-ups after a futex wait, an fsync or an empty poll):
 * the main thread (driver and the store's side), the writer thread, the checkpointer
 * thread, and Node's own helpers (GC and libuv threads that existed before the store).
 * The rate and session count of the bench's fixed-rate rows on one store:
 *
 *   STORE_BENCH_SESSIONS=64 STORE_BENCH_RATE=1000 STORE_BENCH_CALLS=10000 node dist/bench/store-write-amplification.js
 *
 * The window starts on a freshly reopened store (empty WAL) and ends after close(), whose
 * final checkpoint writes what the WAL still held: deferred writes are counted too.
 */

const sessionsCount = setting("STORE_BENCH_SESSIONS", 10_000);
const calls = setting("STORE_BENCH_CALLS", 6_000);
const rate = setting("STORE_BENCH_RATE", 300);
const payloadBytes = setting("STORE_BENCH_PAYLOAD_BYTES", 1024);
const baseDir = process.env.STORE_BENCH_DIR ?? tmpdir();
const kind = process.env.STORE_BENCH_STORE ?? "sqlite";
const shared = process.env.STORE_BENCH_SHARED === "1";
if (kind !== "sqlite" && kind !== "memory") throw new Error(`STORE_BENCH_STORE must be sqlite or memory`);

function setting(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
  return value;
}

function writeBytes(): number {
  const line = readFileSync("/proc/self/io", "utf8")
    .split("\n")
    .find((l) => l.startsWith("write_bytes:"));
  return Number(line?.split(":")[1]);
}

function filesBytes(path: string): number {
  let total = 0;
  for (const suffix of ["", "-wal", "-shm"]) {
    try {
      total += statSync(path + suffix).size;
    } catch {
      // Not there (the WAL and shm files go away on a clean close).
    }
  }
  return total;
}

/**
 * Frames in the WAL now: mxFrame of the WAL index header at the start of the -shm file
 * (offset 16, native byte order). It grows by the frames of each commit and goes back to
 * the start when a writer reuses the WAL after a complete checkpoint.
 */
function walFrames(path: string): number {
  const header = Buffer.alloc(20);
  let fd: number | undefined;
  try {
    fd = openSync(`${path}-shm`, "r");
    return readSync(fd, header, 0, 20, 0) === 20 ? header.readUInt32LE(16) : 0;
  } catch {
    return 0;
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/** Frames appended to the WAL, from mxFrame sampled after each commit (a reset starts it again). */
let framesWritten = 0;
let lastFrames = 0;
const countFrames = (): void => {
  const now = walFrames(path);
  framesWritten += now >= lastFrames ? now - lastFrames : now;
  lastFrames = now;
};

// A small deterministic generator, so every run drives the same sessions in the same order.
let seed = 0x2545f491;
function random(): number {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 0x1_0000_0000;
}

function bytes(length: number): Uint8Array {
  const out = new Uint8Array(length);
  for (let i = 0; i < length; i++) out[i] = Math.floor(random() * 256);
  return out;
}

interface Live {
  record: SessionRecord;
  /** The previous call's commits: a session's calls take turns (S6), as in the engine. */
  busy: Promise<void>;
}

let groupOf = (tid: number): string => (tid === process.pid ? "main" : "node helpers");
const dir = mkdtempSync(join(baseDir, "sessionbridge-wa-"));
const path = join(dir, "sessions.db");
const now = Date.now();
const live: Live[] = [];
const open = async (): Promise<SessionStore & Partial<Pick<SqliteSessionStore, "stats">>> =>
  kind === "sqlite" ? await createSqliteStore({ path }) : createMemoryStore();
let store = await open();

const entryOf = (
  s: SessionRecord,
  kind: number,
  fields: Partial<JournalRecord>,
  size: number,
): JournalRecord => ({
  sessionId: s.id,
  index: s.journalLength + 1,
  messageId: `${s.id}-${s.journalLength + 1}`,
  kind,
  seq: 0,
  inReplyTo: "",
  recordedAtMs: now,
  envelope: bytes(size),
  ...fields,
});

// Start the sessions: a starter commit each (session + started event), 100 per batch.
for (let first = 0; first < sessionsCount; first += 100) {
  const batch: { sessions: SessionRecord[]; entries: JournalRecord[] } = { sessions: [], entries: [] };
  for (let i = first; i < Math.min(first + 100, sessionsCount); i++) {
    const id = `s${i.toString(36).padStart(6, "0")}${bytes(8).reduce((t, b) => t + b.toString(16), "")}`;
    const base = benchSession(id, id, now);
    const started = entryOf(base, 0, {}, 96);
    const record = { ...base, journalLength: 1 };
    batch.sessions.push(record);
    batch.entries.push(started);
    live.push({ record, busy: Promise.resolve() });
  }
  await store.commit(batch);
}
// The memory store keeps what it holds only while it is open.
if (kind === "sqlite") {
  await store.close();
  // Threads started from here on are the store's: the writer now, the checkpointer later.
  const helpers = new Set(sampleThreads().keys());
  store = await open();
  const writers = new Set([...sampleThreads().keys()].filter((tid) => !helpers.has(tid)));
  groupOf = (tid) =>
    tid === process.pid
      ? "main"
      : writers.has(tid)
        ? "writer"
        : helpers.has(tid)
          ? "node helpers"
          : "checkpointer";
}

lastFrames = walFrames(path);
const sizeBefore = filesBytes(path);
const writtenBefore = writeBytes();
const statsBefore = store.stats?.();
const startedAt = performance.now();
// The process's CPU (all threads: this one, the writer and the checkpointer).
const cpuBefore = process.cpuUsage();
let storedPayload = 0;
const threadsBefore = sampleThreads();

const commitMs: number[] = [];
const timed = async (commit: Promise<void>): Promise<void> => {
  const started = performance.now();
  await commit;
  commitMs.push(performance.now() - started);
  countFrames();
};

const call = async (n: number, s: Live): Promise<void> => {
  const oneWay = n % 10 === 3;
  const keyed = n % 10 === 7;
  const requestSize = payloadBytes;
  // Entries carry the time they were made, and the session's last activity is that time.
  const request = entryOf(
    s.record,
    oneWay ? 3 : 2,
    { seq: s.record.nextSeq, recordedAtMs: now + n },
    requestSize,
  );
  s.record = {
    ...s.record,
    journalLength: request.index,
    nextSeq: s.record.nextSeq + 1,
    lastActiveAtMs: now + n,
  };
  const idempotency = {
    principal: "anonymous",
    key: `key-${n}`,
    requestHash: "0".repeat(64),
    operation: "/bench.v1.Echo/Echo",
    sessionId: s.record.id,
    messageId: request.messageId,
    createdAtMs: now + n,
  };
  const first: StoreBatch = {
    sessions: [s.record],
    entries: [request],
    ...(keyed ? { idempotency: [{ ...idempotency, outcome: undefined }] } : {}),
    ...(oneWay
      ? { outboxAdd: [{ sessionId: s.record.id, messageId: request.messageId, index: request.index }] }
      : {}),
  };
  await timed(store.commit(first));
  const outcomeSize = oneWay ? 48 : payloadBytes;
  const outcome = entryOf(
    s.record,
    oneWay ? 5 : 4,
    { inReplyTo: request.messageId, recordedAtMs: now + n + 1 },
    outcomeSize,
  );
  s.record = { ...s.record, journalLength: outcome.index, lastActiveAtMs: now + n + 1 };
  const second: StoreBatch = {
    sessions: [s.record],
    entries: [outcome],
    ...(keyed ? { idempotency: [{ ...idempotency, outcome: outcome.envelope }] } : {}),
    ...(oneWay ? { outboxRemove: [{ sessionId: s.record.id, messageId: request.messageId }] } : {}),
  };
  await timed(store.commit(second));
  storedPayload += requestSize + outcomeSize;
};

// Fixed rate: call n is due at n / rate seconds, whatever the store's latency.
const inFlight: Promise<void>[] = [];
for (let n = 0; n < calls; n++) {
  const due = startedAt + (n * 1000) / rate;
  const wait = due - performance.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
  const s = live[Math.floor(random() * live.length)];
  if (s === undefined) continue;
  // A shared call starts at once: its entries take the session's next indexes when they
  // are made, and its commits queue behind the session's earlier ones in the store.
  if (shared) inFlight.push(call(n, s));
  else {
    s.busy = s.busy.then(() => call(n, s));
    inFlight.push(s.busy);
  }
}
await Promise.all(inFlight);
const elapsedS = (performance.now() - startedAt) / 1000;
const statsAfter = store.stats?.();
const transactions = (statsAfter?.transactions ?? 0) - (statsBefore?.transactions ?? 0);
const checkpoints = statsAfter?.checkpoints ?? 0;
// What the WAL holds now (the commits since its last reset), by b-tree: where the pages go.
const walPages = kind === "sqlite" ? walPagesByBtree(path) : { frames: 0, transactions: 0, byBtree: [] };
// Threads before close(): its final checkpoint is not a call's cost.
const threads = threadDeltas(threadsBefore, sampleThreads(), groupOf);
await store.close();
const cpu = process.cpuUsage(cpuBefore);
const perCallMs = (seconds: number): number => Number(((seconds * 1000) / calls).toFixed(3));

const written = writeBytes() - writtenBefore;
const growth = filesBytes(path) - sizeBefore;
const kb = (n: number): string => (n / 1024).toFixed(2);
const result = {
  store: kind,
  shared,
  sessions: sessionsCount,
  calls,
  rateCallsPerS: rate,
  achievedCallsPerS: Number((calls / elapsedS).toFixed(1)),
  payloadBytes,
  writeTransactions: transactions,
  commitsPerTransaction: Number(((calls * 2) / Math.max(1, transactions)).toFixed(2)),
  writerMessagesPerCall: Number(
    (((statsAfter?.messagesSent ?? 0) - (statsBefore?.messagesSent ?? 0)) / calls).toFixed(2),
  ),
  writerRepliesPerCall: Number(
    (((statsAfter?.messagesReceived ?? 0) - (statsBefore?.messagesReceived ?? 0)) / calls).toFixed(2),
  ),
  checkpoints,
  walFrames: framesWritten,
  walFramesPerTransaction: Number((framesWritten / Math.max(1, transactions)).toFixed(2)),
  walFramesPerCall: Number((framesWritten / calls).toFixed(2)),
  writtenBytes: written,
  databaseGrowthBytes: growth,
  payloadStoredBytes: storedPayload,
  writtenKiBPerCall: Number(kb(written / calls)),
  storedKiBPerCall: Number(kb(growth / calls)),
  amplification: Number((written / Math.max(1, growth)).toFixed(2)),
  // CPU of the whole process per call: the driver's share is small and the same in every
  // run, the rest is the store's (main thread side, writer, checkpointer).
  cpuMsPerCall: Number(((cpu.user + cpu.system) / 1000 / calls).toFixed(3)),
  cpuSystemMsPerCall: Number((cpu.system / 1000 / calls).toFixed(3)),
  // By thread, before close(): milliseconds of user and kernel CPU per call, wake-ups per call.
  threads: Object.fromEntries(
    [...threads].map(([name, t]) => [
      name,
      {
        userMsPerCall: perCallMs(t.userS),
        systemMsPerCall: perCallMs(t.systemS),
        wakeupsPerCall: Number((t.wakeups / calls).toFixed(2)),
      },
    ]),
  ),
  ...commitLatency(),
  walNow: {
    frames: walPages.frames,
    transactions: walPages.transactions,
    framesPerTransactionByBtree: Object.fromEntries(
      walPages.byBtree.map((b) => [
        b.name,
        Number((b.frames / Math.max(1, walPages.transactions)).toFixed(2)),
      ]),
    ),
  },
};

/** Commit latency from the call's point of view (its turn came, the commit resolved). */
function commitLatency(): { commitP50Ms: number; commitP99Ms: number; commitMaxMs: number } {
  const sorted = [...commitMs].sort((a, b) => a - b);
  const at = (q: number): number =>
    Number((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0).toFixed(2));
  return { commitP50Ms: at(0.5), commitP99Ms: at(0.99), commitMaxMs: at(1) };
}
console.log(JSON.stringify(result, null, 2));
console.log(
  `\n${kb(written / calls)} KiB written per call for ${kb(growth / calls)} KiB stored: ${result.amplification}x`,
);
rmSync(dir, { recursive: true, force: true });
