/**
 * What of each sessionful call outlives a young-generation collection, counted per call:
 * the bridge runs in this process (memory store, in front of the grpc-go echo server) and
 * one raw node:http2 connection drives a fixed number of calls through it with a fixed
 * number outstanding (1 by default), so the calls in flight when a scavenge comes are as
 * few on a loaded machine as on a quiet one; what survives is then what the bridge keeps
 * (the journal, by design) or what lives longer than its call. Reported per call, from
 * v8.GCProfiler: bytes left in the young generation after each scavenge ("survived"),
 * bytes scavenges moved to the old generation ("promoted"), bytes allocated straight into
 * the old generation between collections, and the count of each kind of collection.
 * The client's own share (its streams) is in every figure alike. Not a test.
 *
 *   node dist/bench/survivor-cost.js [exclusive|shared] [calls] [outstanding] [heap profile file]
 *
 * "exclusive" is the bench's bridged-memory row (Call over 64 sessions, round-robin),
 * "shared" its bridged-memory-shared row (Read on one session). With a fourth argument it
 * also writes a sampling heap profile of the survivors (bench/heap-top.ts reads it).
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { CALL_PATH, READ_PATH } from "./bench-paths.js";
import { replyFrameLength, requestFrame } from "./grpc-frames.js";
import { connectPool, type H2Pool } from "./h2-client.js";
import { driveCalls, startInProcessBridge } from "./in-process-bridge.js";
import { openSessions } from "./open-sessions.js";

const [rowArg, callsArg, outstandingArg, profileFile] = process.argv.slice(2);
const row = rowArg ?? "exclusive";
if (row !== "exclusive" && row !== "shared") throw new Error(`row must be exclusive or shared, got ${row}`);
const calls = Number(callsArg ?? 20_000);
const outstanding = Number(outstandingArg ?? 1);
const sessions = row === "exclusive" ? 64 : 1;
const PAYLOAD_BYTES = 1024;

const { echo, runtime } = await startInProcessBridge();
const pool = await connectPool(`127.0.0.1:${runtime.grpc.port}`, 1);
const opened = await openSessions(pool, { keys: { prefix: "s", from: 0, count: sessions }, concurrency: 16 });
if (opened.errors > 0) throw new Error(`opening sessions failed: ${opened.errorSamples.join("; ")}`);
const path = row === "exclusive" ? CALL_PATH : READ_PATH;
const payload = Buffer.alloc(PAYLOAD_BYTES, 0x5a);
const frames = Array.from({ length: sessions }, (_, i) => requestFrame(`s${i}`, payload));
const expected = replyFrameLength(PAYLOAD_BYTES);

const drive = (h2: H2Pool, count: number): Promise<void> =>
  driveCalls(h2, { count, outstanding, path, frames, expectedBytes: expected });

const inspector = new Session();
inspector.connect();
const post = (method: string, params: object = {}): Promise<Record<string, unknown>> =>
  new Promise((resolve, reject) => {
    inspector.post(method, params, (error, result) =>
      error === null ? resolve(result as Record<string, unknown>) : reject(error),
    );
  });

await drive(pool, 3000); // warm-up: JIT, pools, young generation sized
if (profileFile !== undefined) {
  await post("HeapProfiler.startSampling", {
    samplingInterval: 4096,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: false,
  });
}
const profiler = new v8.GCProfiler();
profiler.start();
await drive(pool, calls);
if (profileFile !== undefined) {
  // What was allocated since the last scavenge has met none: one now drops what is dead.
  v8.setFlagsFromString("--expose-gc");
  (runInNewContext("gc") as (options: { type: "minor" }) => void)({ type: "minor" });
  const { profile } = await post("HeapProfiler.stopSampling");
  writeFileSync(profileFile, JSON.stringify(profile));
}
const result = profiler.stop();

type Stats = v8.GCProfilerResult["statistics"][number]["afterGC"];
const sum = (stats: Stats, young: boolean): number =>
  stats.heapSpaceStatistics
    .filter((s) => (s.spaceName === "new_space") === young)
    .reduce((total, s) => total + s.spaceUsedSize, 0);
let survived = 0;
let promoted = 0;
let oldAllocated = 0;
let scavenges = 0;
let majors = 0;
let lastOld: number | undefined;
for (const gc of result?.statistics ?? []) {
  if (lastOld !== undefined) oldAllocated += Math.max(0, sum(gc.beforeGC, false) - lastOld);
  lastOld = sum(gc.afterGC, false);
  if (gc.gcType === "Scavenge") {
    scavenges += 1;
    survived += sum(gc.afterGC, true);
    promoted += Math.max(0, sum(gc.afterGC, false) - sum(gc.beforeGC, false));
  } else if (gc.gcType === "MarkSweepCompact") majors += 1;
}
const per = (bytes: number): string => (bytes / calls).toFixed(0);
process.stdout.write(
  `${row}, ${calls} calls, ${outstanding} outstanding: ${scavenges} scavenges, ${majors} full GCs; ` +
    `per call: survived ${per(survived)} B, promoted ${per(promoted)} B, ` +
    `allocated in the old generation ${per(oldAllocated)} B\n`,
);
await pool.close();
await runtime.stop(2000);
await echo.stop();
process.exit(0);
