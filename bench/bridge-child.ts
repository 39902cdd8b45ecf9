/**
 * The bridge under test, in its own process so its CPU and memory are its own. Loads
 * bench/sessionbridge.yaml, points the echo process entry at the real echo port, starts
 * the runtime on a random port and prints {"type":"ready","address":…,"port":…}.
 *
 *   node dist/bench/bridge-child.js <echo-port> <memory|sqlite:/abs/path.db> [config.yaml]
 *   node dist/bench/bridge-child.js nats://… <memory|sqlite:/abs/path.db> [config.yaml]
 *
 * With a NATS URL instead of a port, the bridge serves NATS (prefix sb) and reaches the
 * echo process at nats://bench.echo. With an http:// location instead of a port, the echo
 * process is a Connect server reached over HTTP. With --http-listener among the
 * arguments, the bridge serves HTTP (Connect, port 0) as well and "address" is that port.
 *
 * stdin: a line "memory" prints {"type":"memory",…} (after a full GC when the child runs
 * with --expose-gc, so heap figures are what is retained); closing stdin stops the bridge
 * cleanly, which is also when a --cpu-prof profile is written. "gc-reset" and "gc" tally
 * garbage collection pauses over a window; with BENCH_TRACE=1, "trace <file>" writes every
 * GC pause and event-loop stall since "gc-reset" with its time (pause-log.ts).
 */
import { writeFileSync } from "node:fs";
import { Session } from "node:inspector";
import { PerformanceObserver, constants as perfConstants } from "node:perf_hooks";
import { createInterface } from "node:readline";
import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { pino } from "pino";
import { installLeanAsyncBind } from "../adapters/grpc/async-bind.js";
import { loadBridgeSetup } from "../bridge/config/check-config.js";
import type { Logger } from "../bridge/logger.js";
import { startBridgeRuntime } from "../cli/bridge-runtime.js";
import { benchConfigFile } from "./bench-paths.js";
import { monotonicMs, PauseLog } from "./pause-log.js";

const args = process.argv.slice(2);
const httpListener = args.includes("--http-listener");
const [echoPort, store, configFile] = args.filter((a) => a !== "--http-listener");
if (echoPort === undefined || store === undefined) {
  process.stderr.write("usage: bridge-child <echo-port> <memory|sqlite:/abs/path.db>\n");
  process.exit(2);
}

const nats = echoPort.startsWith("nats://") ? echoPort : undefined;
const setup = loadBridgeSetup({
  file: configFile ?? benchConfigFile(),
  overrides: {
    grpc: "127.0.0.1:0",
    store,
    ...(nats === undefined ? {} : { nats }),
    ...(httpListener ? { http: "127.0.0.1:0" } : {}),
  },
});
const config = {
  ...setup.config,
  processes: setup.config.processes.map((p) => ({
    ...p,
    location:
      nats !== undefined
        ? "nats://bench.echo"
        : echoPort.startsWith("http://")
          ? echoPort
          : `grpc://127.0.0.1:${echoPort}`,
  })),
};
// BENCH_BRIDGE_LOG=1: the bridge's info logs as JSON lines of type "log" on stdout (the
// soak reads when purges finished); otherwise silent.
const logger =
  process.env.BENCH_BRIDGE_LOG === "1"
    ? (pino({ level: "info", base: { type: "log" } }) as unknown as Logger)
    : undefined;
// As `sessionbridge start` does (cli/start-command.ts).
installLeanAsyncBind();
const runtime = await startBridgeRuntime({
  config,
  contracts: setup.contracts,
  ...(logger === undefined ? {} : { logger }),
});
const print = (message: object): void => {
  process.stdout.write(`${JSON.stringify(message)}\n`);
};
const front = httpListener && runtime.http !== undefined ? runtime.http : runtime.grpc;
print({ type: "ready", address: front.address, port: front.port, pid: process.pid });

// Garbage collection pauses, from perf_hooks: the bench resets the tally when its window
// opens ("gc-reset") and reads it when the window closes ("gc").
// Each pause is also tallied by kind (perf_hooks' detail.kind: minor is a scavenge, major
// a mark-compact's final pause, incremental a step of its marking, weakcb weak callbacks),
// so the longest pause can be traced to the collection that made it.
const GC_KINDS: Record<number, string> = {
  [perfConstants.NODE_PERFORMANCE_GC_MINOR]: "minor",
  [perfConstants.NODE_PERFORMANCE_GC_MAJOR]: "major",
  [perfConstants.NODE_PERFORMANCE_GC_INCREMENTAL]: "incremental",
  [perfConstants.NODE_PERFORMANCE_GC_WEAKCB]: "weakcb",
};
const freshPauses = () => ({
  count: 0,
  totalMs: 0,
  maxMs: 0,
  over5ms: 0,
  byKind: {} as Record<string, { count: number; totalMs: number; maxMs: number; over5ms: number }>,
});
let gcPauses = freshPauses();
const gcObserver = new PerformanceObserver((list) => {
  for (const entry of list.getEntries()) {
    const ms = entry.duration;
    gcPauses.count += 1;
    gcPauses.totalMs += ms;
    if (ms > gcPauses.maxMs) gcPauses.maxMs = ms;
    if (ms > 5) gcPauses.over5ms += 1;
    const detail = (entry as { detail?: { kind?: number } }).detail;
    const kind = GC_KINDS[detail?.kind ?? 0] ?? "other";
    const k = gcPauses.byKind[kind] ?? { count: 0, totalMs: 0, maxMs: 0, over5ms: 0 };
    gcPauses.byKind[kind] = k;
    k.count += 1;
    k.totalMs += ms;
    if (ms > k.maxMs) k.maxMs = ms;
    if (ms > 5) k.over5ms += 1;
  }
});
gcObserver.observe({ entryTypes: ["gc"] });

// Bytes the bridge allocated on the V8 heap over the window: what each collection found
// in use before it ran, less what the previous one left (the window's start for the
// first), plus what is in use now beyond the last. Young-generation pressure per call is
// the figure the scavenges (and the objects they promote) follow.
let heapProfiler: v8.GCProfiler | undefined;
let heapAtStart = 0;
function resetHeapTally(): void {
  heapProfiler?.stop();
  heapProfiler = new v8.GCProfiler();
  heapProfiler.start();
  heapAtStart = v8.getHeapStatistics().used_heap_size;
}
function heapTally(): { allocatedBytes: number; scavenges: number; majors: number; promotedBytes: number } {
  const result = heapProfiler?.stop();
  heapProfiler = undefined;
  let allocatedBytes = 0;
  let scavenges = 0;
  let majors = 0;
  let promotedBytes = 0;
  let after = heapAtStart;
  for (const gc of result?.statistics ?? []) {
    allocatedBytes += Math.max(0, gc.beforeGC.heapStatistics.usedHeapSize - after);
    after = gc.afterGC.heapStatistics.usedHeapSize;
    if (gc.gcType === "Scavenge" || gc.gcType === "MinorMarkCompact") {
      scavenges += 1;
      const old = (stats: typeof gc.beforeGC): number =>
        stats.heapSpaceStatistics.find((space) => space.spaceName === "old_space")?.spaceUsedSize ?? 0;
      promotedBytes += Math.max(0, old(gc.afterGC) - old(gc.beforeGC));
    } else if (gc.gcType === "MarkSweepCompact") majors += 1;
  }
  allocatedBytes += Math.max(0, v8.getHeapStatistics().used_heap_size - after);
  return { allocatedBytes, scavenges, majors, promotedBytes };
}

// "heap-start" and "heap-stop <file>": V8's sampling heap profiler over the window, with
// the objects collected since kept in the samples, so the profile shows where the window's
// allocations come from (short-lived ones included), not only what is still live.
let inspector: Session | undefined;
const post = (method: string, params: object = {}): Promise<Record<string, unknown>> =>
  new Promise((resolve, reject) => {
    inspector?.post(method, params, (error, result) =>
      error === null ? resolve(result as Record<string, unknown>) : reject(error),
    );
  });
async function heapStart(): Promise<void> {
  inspector = new Session();
  inspector.connect();
  await post("HeapProfiler.startSampling", {
    samplingInterval: 8192,
    // BENCH_HEAP_PROF_LIVE=1: only what is still live when the window ends (what is retained);
    // =survivors: what survived every scavenge it met (what is promoted, whether a full
    // collection frees it later or not).
    includeObjectsCollectedByMajorGC: process.env.BENCH_HEAP_PROF_LIVE !== "1",
    includeObjectsCollectedByMinorGC:
      process.env.BENCH_HEAP_PROF_LIVE !== "1" && process.env.BENCH_HEAP_PROF_LIVE !== "survivors",
  });
}
async function heapStop(file: string): Promise<void> {
  // =survivors: what was allocated since the last scavenge has met none yet, so the
  // samples would keep it however short its life; one scavenge now drops what is dead.
  if (process.env.BENCH_HEAP_PROF_LIVE === "survivors") scavenge();
  const { profile } = await post("HeapProfiler.stopSampling");
  writeFileSync(file, JSON.stringify(profile));
  inspector?.disconnect();
  inspector = undefined;
  print({ type: "heap-written", file });
}

/** One young-generation collection, with or without --expose-gc. */
function scavenge(): void {
  v8.setFlagsFromString("--expose-gc");
  const collect = runInNewContext("gc") as (options: { type: "minor" | "major" }) => void;
  collect({ type: "minor" });
}

// BENCH_TRACE=1: each pause and stall with its time, to match with the generator's slow calls.
const pauseLog = process.env.BENCH_TRACE === "1" ? new PauseLog() : undefined;
let windowStartMs = 0;

const gc = (globalThis as { gc?: () => void }).gc;
const commands = createInterface({ input: process.stdin });
commands.on("line", (line) => {
  const command = line.trim();
  if (command === "gc-reset") {
    gcPauses = freshPauses();
    resetHeapTally();
    windowStartMs = monotonicMs();
  } else if (command.startsWith("trace ")) {
    if (pauseLog !== undefined)
      writeFileSync(command.slice("trace ".length), JSON.stringify(pauseLog.since(windowStartMs)));
    print({ type: "trace-written", traced: pauseLog !== undefined });
  } else if (command === "gc") print({ type: "gc", ...gcPauses, ...heapTally() });
  else if (command === "heap-start") {
    heapStart().catch((error: unknown) => process.stderr.write(`heap-start failed: ${String(error)}\n`));
  } else if (command.startsWith("heap-stop ")) {
    heapStop(command.slice("heap-stop ".length)).catch((error: unknown) =>
      process.stderr.write(`heap-stop failed: ${String(error)}\n`),
    );
  } else if (command === "memory") {
    gc?.();
    print({
      type: "memory",
      gc: gc !== undefined,
      ...process.memoryUsage(),
      spaces: v8.getHeapSpaceStatistics(),
    });
  }
});
commands.on("close", () => {
  runtime.stop(2000).then(
    () => process.exit(0),
    (error: unknown) => {
      process.stderr.write(`stop failed: ${String(error)}\n`);
      process.exit(1);
    },
  );
});
