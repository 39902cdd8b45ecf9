/**
 * What one bridged call costs the bridge, counted per call rather than per second: the
 * bridge runs in this process (memory store, in front of the grpc-go echo server) and a
 * raw node:http2 client drives a fixed number of calls through it, closed loop; then the
 * same client drives the same number straight to the echo server. The difference per call
 * is the bridge's share: V8 heap allocated (v8.GCProfiler, as bridge-child.ts counts it),
 * CPU (process.cpuUsage) and collections. A fixed count instead of a fixed window keeps
 * the heap figure steady on a loaded machine (timers and other per-second work barely
 * weigh in), which is what an A/B of two builds needs; CPU still moves with the machine.
 * Not a test; `npm run bench` stays the reference.
 *
 * It also reports what the calls leave behind: on the memory store every call answered in
 * a live session stays in its journal, so after the rounds a full collection shows the
 * heap (V8 heap plus ArrayBuffer memory) each bridged call still holds.
 *
 *   node dist/bench/call-cost.js [memory|passthrough] [calls] [rounds]
 */
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { CALL_PATH, PLAIN_CALL_PATH } from "./bench-paths.js";
import { replyFrameLength, requestFrame } from "./grpc-frames.js";
import { connectPool, type H2Pool } from "./h2-client.js";
import { driveCalls, startInProcessBridge } from "./in-process-bridge.js";
import { openSessions } from "./open-sessions.js";

const [rowArg, callsArg, roundsArg] = process.argv.slice(2);
const row = rowArg ?? "memory";
if (row !== "memory" && row !== "passthrough")
  throw new Error(`row must be memory or passthrough, got ${row}`);
const calls = Number(callsArg ?? 20_000);
const rounds = Number(roundsArg ?? 3);
const CONNECTIONS = 4;
const STREAMS = 16;
const SESSIONS = 64;
const PAYLOAD_BYTES = 1024;

const { echo, runtime } = await startInProcessBridge();
const bridged = await connectPool(`127.0.0.1:${runtime.grpc.port}`, CONNECTIONS);
const direct = await connectPool(echo.address, CONNECTIONS);
const keys = { prefix: "s", from: 0, count: SESSIONS };
if (row === "memory") {
  const opened = await openSessions(bridged, { keys, concurrency: 16 });
  if (opened.errors > 0) throw new Error(`opening sessions failed: ${opened.errorSamples.join("; ")}`);
}
const path = row === "memory" ? CALL_PATH : PLAIN_CALL_PATH;
const payload = Buffer.alloc(PAYLOAD_BYTES, 0x5a);
const frames = Array.from({ length: SESSIONS }, (_, i) => requestFrame(`s${i}`, payload));
const expected = replyFrameLength(PAYLOAD_BYTES);

/** `count` calls, CONNECTIONS × STREAMS outstanding; rejects on the first failure. */
const drive = (pool: H2Pool, count: number): Promise<void> =>
  driveCalls(pool, { count, outstanding: CONNECTIONS * STREAMS, path, frames, expectedBytes: expected });

interface Cost {
  readonly cpuUs: number;
  readonly heapBytes: number;
  readonly scavenges: number;
  readonly majors: number;
  readonly wallMs: number;
}

async function measure(pool: H2Pool): Promise<Cost> {
  await drive(pool, Math.min(2000, calls)); // warm-up: JIT, pools, young generation sized
  const profiler = new v8.GCProfiler();
  profiler.start();
  const heapAtStart = v8.getHeapStatistics().used_heap_size;
  const cpu = process.cpuUsage();
  const started = performance.now();
  await drive(pool, calls);
  const wallMs = performance.now() - started;
  const used = process.cpuUsage(cpu);
  const heapNow = v8.getHeapStatistics().used_heap_size;
  const result = profiler.stop();
  let heapBytes = 0;
  let after = heapAtStart;
  let scavenges = 0;
  let majors = 0;
  for (const gc of result.statistics) {
    heapBytes += Math.max(0, gc.beforeGC.heapStatistics.usedHeapSize - after);
    after = gc.afterGC.heapStatistics.usedHeapSize;
    if (gc.gcType === "Scavenge" || gc.gcType === "MinorMarkCompact") scavenges += 1;
    else if (gc.gcType === "MarkSweepCompact") majors += 1;
  }
  heapBytes += Math.max(0, heapNow - after);
  return { cpuUs: used.user + used.system, heapBytes, scavenges, majors, wallMs };
}

// A full collection on demand, to weigh what calls leave behind rather than what they allocate.
v8.setFlagsFromString("--expose-gc");
const collect = runInNewContext("gc") as () => void;
/** V8 heap plus ArrayBuffer memory (journal entries' bytes live outside the V8 heap). */
const retained = (): number => {
  collect();
  collect();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
};

const per = (value: number): string => (value / calls).toFixed(1);
process.stdout.write(
  `${row}: ${calls} calls per measurement, ${CONNECTIONS} × ${STREAMS} outstanding, Node ${process.version}\n`,
);
process.stdout.write(
  "| round | bridged heap B / call | direct heap B / call | bridge's heap B / call | bridge's CPU µs / call | bridged GCs young / full | bridged calls / s |\n",
);
process.stdout.write("|---:|---:|---:|---:|---:|---:|---:|\n");
let bridgedCalls = 0;
const retainedAtStart = retained();
for (let round = 1; round <= rounds; round++) {
  const through = await measure(bridged);
  bridgedCalls += calls + Math.min(2000, calls);
  const straight = await measure(direct);
  process.stdout.write(
    `| ${round} | ${per(through.heapBytes)} | ${per(straight.heapBytes)} | ${per(through.heapBytes - straight.heapBytes)} | ` +
      `${per(through.cpuUs - straight.cpuUs)} | ${through.scavenges} / ${through.majors} | ${((calls / through.wallMs) * 1000).toFixed(0)} |\n`,
  );
}
if (row === "memory") {
  const held = retained() - retainedAtStart;
  process.stdout.write(
    `retained after ${bridgedCalls} bridged calls in live sessions: ${(held / bridgedCalls).toFixed(0)} B / call (heap + ArrayBuffers, after a full collection)\n`,
  );
}
await bridged.close();
await direct.close();
await runtime.stop(2000);
await echo.stop();
