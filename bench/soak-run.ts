import { readFileSync } from "node:fs";
import path from "node:path";
import Database from "better-sqlite3";
import { benchDir } from "./bench-paths.js";
import { type Peer, type StoreKind, startBridge } from "./bench-processes.js";
import { ErrorTally } from "./error-tally.js";
import { connectPool, type H2Pool } from "./h2-client.js";
import { LatencyRecorder, type LatencySummary } from "./latency.js";
import { openSessions } from "./open-sessions.js";
import { clockTicks, cpuSeconds, memory, writtenBytes } from "./proc-stats.js";
import { type HeapSpace, heapSpacesOf, type ResidentSplit, residentSplit } from "./soak-memory.js";
import type { SoakOp } from "./soak-plan.js";
import { ACTIVE_KEY_PREFIX, SOAK_OPEN_PATH, SoakSessions } from "./soak-sessions.js";
import type { SoakSettings } from "./soak-settings.js";

/** Keys of the idle sessions. */
const IDLE_KEY_PREFIX = "k";
/** How often RSS, heap, GC pauses, CPU and bytes written are sampled. */
const SAMPLE_EVERY_MS = 5_000;
/** RSS growth compares the median of the first window after the warm-up with the last one's. */
export const RSS_WINDOW_SECONDS = 60;
/** The target: RSS growth after the warm-up at most 5 %. */
export const RSS_GROWTH_TARGET = 0.05;

const TICKS = clockTicks();

/**
 * CPU seconds of the bridge's main thread (its task id is its pid): the rest of its CPU is
 * its other threads, the SQLite writer and checkpointer among them.
 */
function mainThreadCpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return (Number(fields[11]) + Number(fields[12])) / TICKS;
}

function median(values: readonly number[]): number | undefined {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
}

export interface SoakSample {
  readonly atSeconds: number;
  readonly rssBytes: number;
  /** V8 heap in use (process.memoryUsage, no forced GC), when the bridge answered in time. */
  readonly heapUsedBytes: number | undefined;
  /**
   * What V8 has reserved for its heap, and the memory outside it that JavaScript objects
   * hold (Buffers among it): where RSS that the heap in use does not explain sits.
   */
  readonly heapTotalBytes: number | undefined;
  readonly externalBytes: number | undefined;
  /** Of externalBytes, what ArrayBuffers' backing stores hold (Buffers, the memory store's journal chunks). */
  readonly arrayBuffersBytes?: number | undefined;
  /** V8's heap by space (new, old, code, map, large object…): reserved against used. */
  readonly heapSpaces?: readonly HeapSpace[] | undefined;
  /** RSS by kind of mapping (file, malloc's brk heap, other anonymous), from /proc/<pid>/smaps. */
  readonly resident?: ResidentSplit | undefined;
  /** Longest GC pause of the bridge's main thread since the previous sample (perf_hooks). */
  readonly gcMaxMs: number | undefined;
  readonly writtenBytes: number | undefined;
  readonly calls: number;
  readonly cpuSeconds: number;
  /** Of cpuSeconds, what the main thread used (the rest: the store's threads, GC helpers, libuv). */
  readonly mainThreadCpuSeconds: number;
  /**
   * Calls answered in the run in the journals of the sessions live now: what a store keeps
   * for live sessions grows with it, whatever its retention of ended ones. Level once the
   * active sessions turn over (soak-plan.ts).
   */
  readonly liveJournalCalls: number;
  /** Sessions live now: the idle ones and the active ones opened and not yet ended. */
  readonly liveSessions: number;
}

export interface PurgeSeen {
  /** Seconds into the run when the bridge logged the purge's end, and what it removed. */
  readonly endSeconds: number;
  readonly sessions: number;
  readonly idempotency: number;
  /** Longest latency of a call due in [scheduled start − 1 s, end]. */
  readonly longestCallMs: number;
}

export interface SoakResult {
  readonly store: StoreKind;
  readonly seconds: number;
  readonly calls: {
    readonly ok: number;
    readonly errors: number;
    readonly errorSamples: readonly string[];
    /** Failures by kind and message, ids and numbers masked. */
    readonly errorsByShape?: Readonly<Record<string, number>>;
  };
  readonly byKind: Readonly<Record<SoakOp, number>>;
  readonly latency: LatencySummary;
  readonly samples: readonly SoakSample[];
  readonly rss: {
    /**
     * Medians of the samples in the first and in the last window after the warm-up
     * (RSS_WINDOW_SECONDS each): single samples swing with the GC's timing and say nothing
     * about a trend.
     */
    readonly afterWarmupBytes: number;
    readonly endBytes: number;
    readonly maxAfterWarmupBytes: number;
    /** (end − after warm-up) ÷ after warm-up, of the window medians. */
    readonly growth: number;
    /**
     * growth ≤ RSS_GROWTH_TARGET; undefined when the run is too short for two windows
     * after the warm-up, which would then overlap and compare a window with itself.
     */
    readonly targetMet: boolean | undefined;
    /** The same for the V8 heap in use. */
    readonly heapAfterWarmupBytes: number | undefined;
    readonly heapEndBytes: number | undefined;
    readonly heapGrowth: number | undefined;
    /** Calls in live sessions' journals (SoakSample.liveJournalCalls), same windows. */
    readonly liveJournalCallsAfterWarmup: number;
    readonly liveJournalCallsEnd: number;
    /** Live sessions (SoakSample.liveSessions), same windows. */
    readonly liveSessionsAfterWarmup: number;
    readonly liveSessionsEnd: number;
    /**
     * RSS growth per call added to live sessions' journals: about an entry pair's size when
     * the growth is what the store keeps for live sessions, bounded by their number and
     * their journals' length (S9), rather than a leak.
     */
    readonly growthBytesPerLiveCall: number | undefined;
  };
  /** The longest GC pause of the bridge's main thread in the run. */
  readonly longestGcPauseMs: number | undefined;
  readonly cpuSecondsPer1000: number;
  /** Of it, the main thread's (the rest is the store's threads, GC helpers and libuv). */
  readonly mainThreadCpuSecondsPer1000: number;
  readonly writes: {
    readonly bytesPerCall: number | undefined;
    /** Journal bytes appended per call (rows × their mean size, from the database). */
    readonly storedBytesPerCall: number | undefined;
    readonly amplification: number | undefined;
  };
  readonly purges: readonly PurgeSeen[];
  /** The longest call latency while a purge ran, and the longest outside purges. */
  readonly longestCallDuringPurgeMs: number | undefined;
  readonly longestCallOutsidePurgeMs: number;
  /** p99 of the calls due while a purge ran, and of the others: a purge that held calls back shows here. */
  readonly p99DuringPurgeMs: number | undefined;
  readonly p99OutsidePurgeMs: number | undefined;
  readonly problems: readonly string[];
}

/** Journal rows so far (the highest rowid: purges delete old rows, never the newest) and their mean size. */
function journalFigures(dbPath: string, sinceRowid: number): { maxRowid: number; meanRowBytes: number } {
  const db = new Database(dbPath, { readonly: true, fileMustExist: true });
  try {
    const max = db.prepare("SELECT coalesce(max(rowid), 0) AS m FROM journal").get() as { m: number };
    const mean = db
      .prepare(
        // The session's id counts as stored with each entry, as it did when rows held it.
        "SELECT avg(length(j.envelope) + length(k.id) + length(j.message_id) + length(j.in_reply_to) + 24) AS b " +
          "FROM journal AS j JOIN session_keys AS k ON k.key = j.session_key WHERE j.rowid > ?",
      )
      .get(sinceRowid) as { b: number | null };
    return { maxRowid: max.m, meanRowBytes: mean.b ?? 0 };
  } finally {
    db.close();
  }
}

/**
 * One soak run on a fresh bridge: open the idle sessions and the active slots' first ones,
 * then `seconds` of load at a fixed rate (latency from each call's scheduled time) on the
 * active slots (soak-plan.ts). Of every 20 calls: 11 Call (half with an idempotency key,
 * one of them a retry of the previous key), 5 Notify (one-way), 2 End, and 2 Open of a new
 * session in a slot whose session ended, so the live count and the live journals stay level.
 */
export async function runSoak(echo: Peer, store: StoreKind, settings: SoakSettings): Promise<SoakResult> {
  process.env.BENCH_BRIDGE_LOG = "1";
  const bridge = await startBridge(echo, store, { configFile: path.join(benchDir(), "soak.yaml") });
  const pool: H2Pool = await connectPool(bridge.address, settings.connections);
  const started = performance.now();
  const purgeEnds: { atMs: number; sessions: number; idempotency: number }[] = [];
  bridge.child.onLine("log", (line) => {
    if (line.msg !== "purged expired records") return;
    purgeEnds.push({
      atMs: performance.now(),
      sessions: Number(line.sessions ?? 0),
      idempotency: Number(line.idempotency ?? 0),
    });
  });
  try {
    const sessions = new SoakSessions(pool, {
      activeSlots: settings.activeSessions,
      payloadBytes: settings.payloadBytes,
    });
    const setupActive = sessions.setupCount();
    process.stderr.write(
      `soak: opening ${settings.idleSessions} idle sessions and ${setupActive} of ${settings.activeSessions} active ones\n`,
    );
    for (const keys of [
      { prefix: IDLE_KEY_PREFIX, from: 0, count: settings.idleSessions },
      { prefix: ACTIVE_KEY_PREFIX, from: 0, count: setupActive },
    ]) {
      const open = await openSessions(pool, { keys, concurrency: 64, path: SOAK_OPEN_PATH });
      if (open.errors > 0)
        throw new Error(`${open.errors} Open calls failed: ${open.errorSamples.join("; ")}`);
    }
    sessions.adoptSetup();

    const latency = new LatencyRecorder();
    const errors = new ErrorTally();
    // Failures by kind and message (ids and numbers masked), so a run says how many of
    // each; bounded, the rest counted together.
    const failures = new Map<string, number>();
    const countFailure = (failure: string): void => {
      const shape = failure.replace(/[0-9a-zA-Z_-]{16,}/g, "…").replace(/\d+(\.\d+)?/g, "#");
      const key = failures.has(shape) || failures.size < 20 ? shape : "other";
      failures.set(key, (failures.get(key) ?? 0) + 1);
    };
    // Each call's due time and latency, for the purge windows.
    const dueTimes: number[] = [];
    const latencies: number[] = [];
    let ok = 0;
    let inflight = 0;
    const measureFrom = performance.now();
    const intervalMs = 1000 / settings.ratePerSec;
    const total = Math.floor(settings.seconds * settings.ratePerSec);
    let next = 0;

    const samples: SoakSample[] = [];
    const cpuAtStart = cpuSeconds(bridge.pid);
    const mainCpuAtStart = mainThreadCpuSeconds(bridge.pid);
    const writtenAtStart = writtenBytes(bridge.pid);
    const journalAtStart = bridge.storePath === undefined ? undefined : journalFigures(bridge.storePath, 0);
    // The bridge reports its heap and its GC pauses since the last sample (bench/bridge-child.ts);
    // an answer that does not come in time leaves those figures out, never the sample.
    interface BridgeMemory {
      readonly usedBytes: number | undefined;
      readonly totalBytes: number | undefined;
      readonly externalBytes: number | undefined;
      readonly arrayBuffersBytes: number | undefined;
      readonly spaces: readonly HeapSpace[] | undefined;
      readonly gcMaxMs: number | undefined;
    }
    const unknownMemory: BridgeMemory = {
      usedBytes: undefined,
      totalBytes: undefined,
      externalBytes: undefined,
      arrayBuffersBytes: undefined,
      spaces: undefined,
      gcMaxMs: undefined,
    };
    let heap = unknownMemory;
    const askBridge = async (): Promise<void> => {
      try {
        const gcLine = bridge.child.next("gc", 2_000);
        bridge.child.send("gc");
        const gc = await gcLine;
        bridge.child.send("gc-reset");
        const memoryLine = bridge.child.next("memory", 2_000);
        bridge.child.send("memory");
        const memory = await memoryLine;
        heap = {
          usedBytes: Number(memory.heapUsed),
          totalBytes: Number(memory.heapTotal),
          externalBytes: Number(memory.external),
          arrayBuffersBytes: Number(memory.arrayBuffers),
          spaces: heapSpacesOf(memory.spaces),
          gcMaxMs: Number(gc.maxMs),
        };
      } catch {
        heap = unknownMemory;
      }
    };
    bridge.child.send("gc-reset");
    const sample = (): void => {
      samples.push({
        atSeconds: (performance.now() - measureFrom) / 1000,
        rssBytes: memory(bridge.pid).rssBytes,
        heapUsedBytes: heap.usedBytes,
        heapTotalBytes: heap.totalBytes,
        externalBytes: heap.externalBytes,
        arrayBuffersBytes: heap.arrayBuffersBytes,
        heapSpaces: heap.spaces,
        resident: residentSplit(bridge.pid),
        gcMaxMs: heap.gcMaxMs,
        writtenBytes: writtenBytes(bridge.pid),
        calls: ok,
        cpuSeconds: cpuSeconds(bridge.pid) - cpuAtStart,
        mainThreadCpuSeconds: mainThreadCpuSeconds(bridge.pid) - mainCpuAtStart,
        liveJournalCalls: sessions.liveJournalCalls,
        liveSessions: settings.idleSessions + sessions.liveActive,
      });
      heap = unknownMemory;
      // Asked now, answered before the next sample.
      void askBridge();
    };
    sample();
    const sampler = setInterval(sample, SAMPLE_EVERY_MS);

    await new Promise<void>((resolve) => {
      let finished = false;
      const done = (dueAt: number, kind: string) => (failure: string | undefined) => {
        inflight -= 1;
        const ms = performance.now() - dueAt;
        if (failure !== undefined) {
          errors.add(`${kind}: ${failure}`);
          countFailure(`${kind}: ${failure}`);
        } else {
          ok += 1;
          latency.recordMs(ms);
          dueTimes.push(dueAt - measureFrom);
          latencies.push(ms);
        }
        if (next >= total && inflight === 0 && !finished) {
          finished = true;
          resolve();
        }
      };
      const send = (i: number, dueAt: number): void => {
        inflight += 1;
        sessions.send(i, (kind) => done(dueAt, kind));
      };
      const pump = (): void => {
        const now = performance.now();
        while (next < total) {
          const dueAt = measureFrom + next * intervalMs;
          if (dueAt > now) break;
          try {
            send(next, dueAt);
          } catch (error) {
            // A connection the bridge closed (or lost) fails its calls; the run goes on
            // and counts them as errors.
            done(dueAt, "send")(error instanceof Error ? error.message : String(error));
          }
          next += 1;
        }
        if (next < total) setTimeout(pump, Math.max(0, measureFrom + next * intervalMs - performance.now()));
      };
      pump();
    });
    clearInterval(sampler);
    sample();
    const runSeconds = (performance.now() - measureFrom) / 1000;
    const writtenAtEnd = writtenBytes(bridge.pid);
    const journalAtEnd =
      bridge.storePath === undefined || journalAtStart === undefined
        ? undefined
        : journalFigures(bridge.storePath, journalAtStart.maxRowid);

    // Purge windows: the engine purges every purgeIntervalMs from its start; a purge that
    // removed something logs when it ends. Its window runs from the tick before that end
    // (less a second, for timer drift) to the end.
    const purges: PurgeSeen[] = [];
    const inPurge = new Uint8Array(latencies.length);
    for (const p of purgeEnds) {
      const endMs = p.atMs - measureFrom;
      if (endMs < 0) continue;
      const sinceStart = p.atMs - started;
      const tick = Math.floor(sinceStart / settings.purgeIntervalMs) * settings.purgeIntervalMs;
      const fromMs = started + tick - 1000 - measureFrom;
      let longest = 0;
      for (let j = 0; j < latencies.length; j++) {
        const due = dueTimes[j] as number;
        if (due >= fromMs && due <= endMs) {
          inPurge[j] = 1;
          longest = Math.max(longest, latencies[j] as number);
        }
      }
      purges.push({
        endSeconds: endMs / 1000,
        sessions: p.sessions,
        idempotency: p.idempotency,
        longestCallMs: longest,
      });
    }
    let outside = 0;
    const during: number[] = [];
    const others: number[] = [];
    for (let j = 0; j < latencies.length; j++) {
      const ms = latencies[j] as number;
      if (inPurge[j] === 0) {
        outside = Math.max(outside, ms);
        others.push(ms);
      } else during.push(ms);
    }
    const p99 = (values: number[]): number | undefined => {
      if (values.length === 0) return undefined;
      values.sort((a, b) => a - b);
      return values[Math.min(values.length - 1, Math.floor(values.length * 0.99))];
    };

    const afterWarmup = samples.filter((s) => s.atSeconds >= settings.warmupSeconds);
    const runEnd = samples[samples.length - 1]?.atSeconds ?? 0;
    const firstWindow = afterWarmup.filter((s) => s.atSeconds < settings.warmupSeconds + RSS_WINDOW_SECONDS);
    const lastWindow = afterWarmup.filter((s) => s.atSeconds > runEnd - RSS_WINDOW_SECONDS);
    const afterWarmupBytes = median(firstWindow.map((s) => s.rssBytes)) ?? 0;
    const liveCallsAfterWarmup = median(firstWindow.map((s) => s.liveJournalCalls)) ?? 0;
    const liveCallsEnd = median(lastWindow.map((s) => s.liveJournalCalls)) ?? 0;
    const liveSessionsAfterWarmup = median(firstWindow.map((s) => s.liveSessions)) ?? 0;
    const liveSessionsEnd = median(lastWindow.map((s) => s.liveSessions)) ?? 0;
    const endBytes = median(lastWindow.map((s) => s.rssBytes)) ?? 0;
    const growth = afterWarmupBytes === 0 ? 0 : (endBytes - afterWarmupBytes) / afterWarmupBytes;
    const heapOf = (window: readonly SoakSample[]): number | undefined =>
      median(window.flatMap((s) => (s.heapUsedBytes === undefined ? [] : [s.heapUsedBytes])));
    const heapAfterWarmupBytes = heapOf(firstWindow);
    const heapEndBytes = heapOf(lastWindow);
    const gcPauses = samples.flatMap((s) => (s.gcMaxMs === undefined ? [] : [s.gcMaxMs]));
    const last = samples[samples.length - 1];
    const written =
      writtenAtStart === undefined || writtenAtEnd === undefined ? undefined : writtenAtEnd - writtenAtStart;
    const calls = ok;
    const bytesPerCall = written === undefined || calls === 0 ? undefined : written / calls;
    const storedBytesPerCall =
      journalAtEnd === undefined || journalAtStart === undefined || calls === 0
        ? undefined
        : ((journalAtEnd.maxRowid - journalAtStart.maxRowid) * journalAtEnd.meanRowBytes) / calls;
    const problems: string[] = [];
    const allCalls = calls + errors.count;
    if (allCalls === 0 || errors.count / allCalls > 0.001) {
      problems.push(`${store}: ${errors.count} errors in ${allCalls} calls: ${errors.samples.join("; ")}`);
    }
    return {
      store,
      seconds: runSeconds,
      calls: {
        ok,
        errors: errors.count,
        errorSamples: errors.samples,
        errorsByShape: Object.fromEntries([...failures].sort((a, b) => b[1] - a[1])),
      },
      byKind: sessions.byKind,
      latency: latency.summary(),
      samples,
      rss: {
        afterWarmupBytes,
        endBytes,
        maxAfterWarmupBytes: Math.max(...afterWarmup.map((s) => s.rssBytes), afterWarmupBytes),
        growth,
        targetMet:
          settings.seconds < settings.warmupSeconds + 2 * RSS_WINDOW_SECONDS
            ? undefined
            : growth <= RSS_GROWTH_TARGET,
        heapAfterWarmupBytes,
        heapEndBytes,
        heapGrowth:
          heapAfterWarmupBytes === undefined || heapEndBytes === undefined
            ? undefined
            : (heapEndBytes - heapAfterWarmupBytes) / heapAfterWarmupBytes,
        liveJournalCallsAfterWarmup: liveCallsAfterWarmup,
        liveJournalCallsEnd: liveCallsEnd,
        liveSessionsAfterWarmup,
        liveSessionsEnd,
        growthBytesPerLiveCall:
          // Level counts swing a little with the calls in flight; a per-call figure says something
          // only when the live journals grew.
          liveCallsEnd > liveCallsAfterWarmup * 1.1
            ? (endBytes - afterWarmupBytes) / (liveCallsEnd - liveCallsAfterWarmup)
            : undefined,
      },
      longestGcPauseMs: gcPauses.length === 0 ? undefined : Math.max(...gcPauses),
      cpuSecondsPer1000: ((last?.cpuSeconds ?? 0) / Math.max(1, calls)) * 1000,
      mainThreadCpuSecondsPer1000: ((last?.mainThreadCpuSeconds ?? 0) / Math.max(1, calls)) * 1000,
      writes: {
        bytesPerCall,
        storedBytesPerCall,
        amplification:
          bytesPerCall === undefined || storedBytesPerCall === undefined || storedBytesPerCall === 0
            ? undefined
            : bytesPerCall / storedBytesPerCall,
      },
      purges,
      longestCallDuringPurgeMs:
        purges.length === 0 ? undefined : Math.max(...purges.map((p) => p.longestCallMs)),
      longestCallOutsidePurgeMs: outside,
      p99DuringPurgeMs: p99(during),
      p99OutsidePurgeMs: p99(others),
      problems,
    };
  } finally {
    await pool.close();
    await bridge.stop();
  }
}
