import { setTimeout as sleep } from "node:timers/promises";
import { CALL_PATH } from "./bench-paths.js";
import { type Peer, type Server, startBridge } from "./bench-processes.js";
import type { BenchSettings } from "./bench-settings.js";
import { runGenerator } from "./generator-runner.js";
import type { KeyRange, LoadResult, LoadSpec, OpenResult } from "./load-plan.js";
import { type MachineLoad, measureJob, type ProcessFigures } from "./measure-job.js";
import { memory } from "./proc-stats.js";

export interface MemorySnapshot {
  readonly rssBytes: number;
  /** V8 heap in use after a full GC: what the bridge retains. */
  readonly heapUsedBytes: number;
  /** V8 heap reserved: RSS keeps pages the GC freed but V8 has not given back. */
  readonly heapTotalBytes: number;
  /** Memory outside the V8 heap (Buffers, typed array backing stores), part of it arrayBuffers. */
  readonly externalBytes: number;
  readonly arrayBuffersBytes: number;
}

export interface RoutingPart {
  readonly sessions: number;
  readonly open: OpenResult;
  readonly load: LoadResult;
  readonly machine: MachineLoad | undefined;
  /** The bridge's CPU over the measured window. */
  readonly bridge: ProcessFigures | undefined;
}

export interface RoutingE2eResult {
  readonly ratePerSec: number;
  readonly small: RoutingPart;
  readonly large: RoutingPart;
  readonly before: MemorySnapshot;
  readonly after: MemorySnapshot;
  /** (after − before) ÷ sessions added. */
  readonly rssPerSessionBytes: number;
  readonly heapPerSessionBytes: number;
  readonly p50Ratio: number;
  readonly p99Ratio: number;
}

/**
 * Routing at scale, end to end, on one memory-store bridge: fixed-rate p50 over `small`
 * live sessions, then sessions opened up to `large` as fast as the bridge takes them, then
 * the same load spread over all of them. Memory is read after a full GC in the bridge
 * (--expose-gc), before and after the mass open, so the difference is what idle sessions
 * retain (each with the journal of its Open exchange).
 */
export async function runRoutingE2e(echo: Peer, settings: BenchSettings): Promise<RoutingE2eResult> {
  const bridge = await startBridge(echo, "memory", { exposeGc: true });
  try {
    const key = (from: number, count: number): KeyRange => ({ prefix: "r", from, count });
    const load = (sessions: number): LoadSpec => ({
      shape: { mode: "fixed", ratePerSec: settings.routingRatePerSec, maxInFlight: settings.maxInFlight },
      callPath: CALL_PATH,
      keys: key(0, sessions),
      payloadBytes: settings.payloadBytes,
      warmupMs: settings.warmupSeconds * 1000,
      measureMs: settings.routingSeconds * 1000,
    });
    const base = { target: bridge.address, connections: settings.connections };
    const concurrency = settings.connections * 32;

    // Open the small set, then warm the fresh bridge up at full load: the large measurement
    // comes after a mass open that warms it thoroughly, and a cold JIT must not make the
    // small one look slow by comparison.
    const warm = await runGenerator({
      ...base,
      open: { keys: key(0, settings.routingSmall), concurrency },
      load: {
        shape: { mode: "closed", streamsPerConnection: settings.streamsPerConnection },
        callPath: CALL_PATH,
        keys: key(0, settings.routingSmall),
        payloadBytes: settings.payloadBytes,
        warmupMs: settings.warmupSeconds * 1000,
        measureMs: 1000,
      },
    }).result;
    const small = await measureJob({ ...base, load: load(settings.routingSmall) }, { bridge: bridge.pid });
    const before = await snapshot(bridge);
    const added = settings.routingLarge - settings.routingSmall;
    const opened = await runGenerator({
      ...base,
      open: { keys: key(settings.routingSmall, added), concurrency },
    }).result;
    await sleep(1000);
    const after = await snapshot(bridge);
    const large = await measureJob({ ...base, load: load(settings.routingLarge) }, { bridge: bridge.pid });

    const smallLoad = small.result.load as LoadResult;
    const largeLoad = large.result.load as LoadResult;
    return {
      ratePerSec: settings.routingRatePerSec,
      small: {
        sessions: settings.routingSmall,
        open: warm.open as OpenResult,
        load: smallLoad,
        machine: small.machine,
        bridge: small.processes.bridge,
      },
      large: {
        sessions: settings.routingLarge,
        open: opened.open as OpenResult,
        load: largeLoad,
        machine: large.machine,
        bridge: large.processes.bridge,
      },
      before,
      after,
      rssPerSessionBytes: (after.rssBytes - before.rssBytes) / added,
      heapPerSessionBytes: (after.heapUsedBytes - before.heapUsedBytes) / added,
      p50Ratio: largeLoad.latency.p50Us / smallLoad.latency.p50Us,
      p99Ratio: largeLoad.latency.p99Us / smallLoad.latency.p99Us,
    };
  } finally {
    await bridge.stop();
  }
}

async function snapshot(bridge: Server): Promise<MemorySnapshot> {
  bridge.child.send("memory");
  const reply = await bridge.child.next("memory");
  // RSS from /proc, read right after the GC the query ran.
  return {
    rssBytes: memory(bridge.pid).rssBytes,
    heapUsedBytes: Number(reply.heapUsed),
    heapTotalBytes: Number(reply.heapTotal),
    externalBytes: Number(reply.external),
    arrayBuffersBytes: Number(reply.arrayBuffers),
  };
}

/** The same failure rules as the load scenarios: Open failures, errors, a rate not held. */
export function routingProblems(r: RoutingE2eResult): string[] {
  const problems: string[] = [];
  for (const [name, part] of [
    ["small", r.small],
    ["large", r.large],
  ] as const) {
    const id = `routing/e2e (${part.sessions} sessions)`;
    if (part.open.errors > 0) {
      problems.push(
        `${id}: ${part.open.errors} of ${part.open.count} Open calls failed: ${part.open.errorSamples.join("; ")}`,
      );
    }
    const calls = part.load.ok + part.load.errors;
    if (calls === 0 || part.load.errors / calls > 0.001) {
      problems.push(
        `${id}: ${part.load.errors} errors in ${calls} calls: ${part.load.errorSamples.join("; ")}`,
      );
    }
    if (part.load.throughputPerSec < r.ratePerSec * 0.97 || part.load.unsent > 0) {
      problems.push(
        `${id}: did not reach its fixed rate (${name}): ${part.load.throughputPerSec.toFixed(0)} of ${r.ratePerSec} req/s`,
      );
    }
  }
  return problems;
}
