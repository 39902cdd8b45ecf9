import type { BenchSettings } from "./bench-settings.js";
import type { DriftReport } from "./drift.js";
import { HTTP_PATHS, HTTP_REFERENCE, type HttpPathKind } from "./http-rows.js";
import type { IdleRssResult } from "./idle-rss.js";
import type { MachineInfo } from "./machine-info.js";
import type { MachineLoad } from "./measure-job.js";
import type { NatsBenchResult } from "./nats-bench.js";
import type { RoutingE2eResult } from "./routing-e2e.js";
import type { RoutingMicroResult } from "./routing-micro.js";
import type { ModeKind, PathKind, ScenarioResult } from "./scenarios.js";

/** A bridged scenario against the direct one of the same mode, from the same run. */
export interface Comparison {
  readonly path: Exclude<PathKind, "direct">;
  readonly mode: ModeKind;
  readonly addedP50Us: number;
  readonly addedP99Us: number;
  /** Fixed rate only: the same differences on latency measured from the actual send. */
  readonly addedServiceP50Us: number | undefined;
  readonly addedServiceP99Us: number | undefined;
  readonly throughputRatio: number;
  /** Throughput against nginx grpc_pass in the same mode; undefined when nginx did not run. */
  readonly throughputRatioToNginx: number | undefined;
  /** The direct row divided by: "direct", or the HTTP row's own (http-rows.ts). */
  readonly reference?: PathKind;
}

/** One DESIGN §6 goal next to what this run measured. Informational: the run never fails on these. */
export interface TargetCheck {
  readonly goal: string;
  readonly measured: string;
  readonly met: boolean | undefined;
}

export interface BenchResults {
  readonly machine: MachineInfo;
  readonly settings: BenchSettings;
  readonly scenarios: readonly ScenarioResult[];
  readonly comparisons: readonly Comparison[];
  readonly routing: {
    readonly micro: RoutingMicroResult | undefined;
    readonly e2e: RoutingE2eResult | undefined;
  };
  readonly targets: readonly TargetCheck[];
  /** The idle bridge with the orders example (idle-rss.ts); undefined when not run. */
  readonly idle?: IdleRssResult | undefined;
  /** NATS request-reply, direct and through the bridge; undefined when not run. */
  readonly nats?: NatsBenchResult | undefined;
  /** Why the run failed (errors over 0.1%, a fixed rate not reached); empty when it passed. */
  readonly problems: readonly string[];
  /** Windows that other work on the machine disturbed; they do not fail the run. */
  readonly warnings: readonly string[];
  /** The machine's speed over the run and each row's CPU per call against its reference (drift.ts). */
  readonly drift?: DriftReport | undefined;
  /** Rows drift flags, one line each; they do not fail the run. */
  readonly drifted?: readonly string[] | undefined;
  readonly durationSeconds: number;
}

export function compare(scenarios: readonly ScenarioResult[]): Comparison[] {
  const out: Comparison[] = [];
  for (const s of scenarios) {
    if (s.path === "direct") continue;
    const http = (HTTP_PATHS as readonly PathKind[]).includes(s.path);
    const reference: PathKind | undefined = http ? HTTP_REFERENCE[s.path as HttpPathKind] : "direct";
    if (reference === undefined) continue;
    const direct = scenarios.find((d) => d.path === reference && d.mode === s.mode);
    if (direct === undefined) continue;
    // nginx proxies gRPC: no peer of the HTTP rows.
    const nginx = http ? undefined : scenarios.find((d) => d.path === "nginx" && d.mode === s.mode);
    const service = s.load.serviceLatency;
    const directService = direct.load.serviceLatency;
    out.push({
      path: s.path,
      mode: s.mode,
      addedP50Us: s.load.latency.p50Us - direct.load.latency.p50Us,
      addedP99Us: s.load.latency.p99Us - direct.load.latency.p99Us,
      addedServiceP50Us: service && directService ? service.p50Us - directService.p50Us : undefined,
      addedServiceP99Us: service && directService ? service.p99Us - directService.p99Us : undefined,
      throughputRatio: s.load.throughputPerSec / direct.load.throughputPerSec,
      throughputRatioToNginx:
        nginx === undefined ? undefined : s.load.throughputPerSec / nginx.load.throughputPerSec,
      reference,
    });
  }
  return out;
}

const ms = (us: number): string => `${(us / 1000).toFixed(2)} ms`;

export function checkTargets(
  scenarios: readonly ScenarioResult[],
  comparisons: readonly Comparison[],
  micro: RoutingMicroResult | undefined,
  e2e: RoutingE2eResult | undefined,
  idle?: IdleRssResult,
): TargetCheck[] {
  const checks: TargetCheck[] = [];
  if (idle !== undefined) {
    checks.push({
      goal: "an idle bridge with the example ≤ 80 MB RSS",
      measured: `${(idle.rssBytes / 1024 ** 2).toFixed(1)} MB (median of ${idle.runs.length}; ${idle.runs.map((r) => (r.rssBytes / 1024 ** 2).toFixed(1)).join(", ")})`,
      met: idle.rssBytes <= 80 * 1024 ** 2,
    });
  }
  const find = (p: PathKind, mode: ModeKind): ScenarioResult | undefined =>
    scenarios.find((s) => s.path === p && s.mode === mode);
  const isMemory = (p: PathKind): boolean => p === "bridged-memory" || p === "bridged-memory-shared";
  const isSqlite = (p: PathKind): boolean => p === "bridged-sqlite" || p === "bridged-sqlite-shared";
  for (const c of comparisons.filter(
    (c) => c.mode === "unthrottled" && c.throughputRatioToNginx !== undefined,
  )) {
    if (c.path === "bridged-passthrough") {
      checks.push({
        goal: "sessionless passthrough beats nginx grpc_pass, unthrottled",
        measured: `${(c.throughputRatioToNginx as number).toFixed(2)}× nginx`,
        met: (c.throughputRatioToNginx as number) > 1,
      });
    } else if (c.path === "bridged-passthrough-x2") {
      checks.push({
        goal: "two bridge processes sharing the connections: sessionless passthrough beats nginx grpc_pass, unthrottled",
        measured: `${(c.throughputRatioToNginx as number).toFixed(2)}× nginx`,
        met: (c.throughputRatioToNginx as number) > 1,
      });
    } else if (isMemory(c.path)) {
      checks.push({
        goal: `${c.path}: a sessionful call keeps up with nginx grpc_pass, unthrottled`,
        measured: `${(c.throughputRatioToNginx as number).toFixed(2)}× nginx`,
        met: (c.throughputRatioToNginx as number) >= 1,
      });
    }
  }
  for (const c of comparisons.filter((c) => c.mode === "fixed" && c.path.startsWith("bridged"))) {
    const limitUs = isSqlite(c.path) ? 5000 : 3000;
    checks.push({
      goal: `${c.path}: added p99 ≤ ${limitUs / 1000} ms at the fixed rate`,
      measured: `+${ms(c.addedP50Us)} p50, +${ms(c.addedP99Us)} p99`,
      met: c.addedP99Us <= limitUs,
    });
  }
  for (const s of scenarios.filter((s) => s.path.startsWith("bridged") && s.mode === "fixed")) {
    const per1000 = s.bridge?.cpuSecondsPer1000 ?? Number.NaN;
    const limit = isSqlite(s.path) ? 0.12 : 0.08;
    if (!s.path.startsWith("bridged-passthrough")) {
      checks.push({
        goal: `${s.path}: bridge CPU ≤ ${limit} s per 1000 sessionful calls`,
        measured: `${per1000.toFixed(3)} CPU s per 1000 calls`,
        met: per1000 <= limit,
      });
    }
    if (s.bridgeGc !== undefined) {
      checks.push({
        goal: `${s.path}: no GC pause above 5 ms in the fixed-rate window`,
        measured: `longest ${s.bridgeGc.maxPauseMs.toFixed(1)} ms (${s.bridgeGc.count} collections)`,
        met: s.bridgeGc.maxPauseMs <= 5,
      });
    }
  }
  const memory = find("bridged-memory", "unthrottled");
  for (const [m, q] of [
    ["bridged-memory", "bridged-sqlite"],
    ["bridged-memory-shared", "bridged-sqlite-shared"],
  ] as const) {
    const mem = find(m, "unthrottled");
    const sql = find(q, "unthrottled");
    if (mem === undefined || sql === undefined) continue;
    const ratio = sql.load.throughputPerSec / mem.load.throughputPerSec;
    checks.push({
      goal: `${q}: SQLite throughput ≥ 0.7× the memory store's, unthrottled`,
      measured: `${ratio.toFixed(2)}×`,
      met: ratio >= 0.7,
    });
  }
  if (micro !== undefined) {
    const first = micro.sizes[0];
    const last = micro.sizes[micro.sizes.length - 1];
    const addedNs = first && last ? last.route.p50Ns - first.route.p50Ns : Number.NaN;
    // The difference in absolute terms, next to what a whole bridged call costs the bridge.
    const perCall = memory?.bridge?.cpuSecondsPer1000;
    const context =
      perCall === undefined
        ? ""
        : `; a bridged call costs the bridge ${(perCall * 1000).toFixed(0)} µs of CPU`;
    checks.push({
      goal: "routing cost flat in the number of live sessions (read ≤ 1.2× as flat), in-process",
      measured:
        `${micro.routeP50Ratio.toFixed(2)}× p50 (${micro.sizes.map((s) => s.sessions).join(" → ")} sessions: ` +
        `+${addedNs.toFixed(0)} ns per call${context})`,
      met: micro.routeP50Ratio <= 1.2,
    });
  }
  if (micro !== undefined) {
    checks.push({
      goal: "an idle session costs ≤ 1 KB of memory (the engine's state; the SQLite default keeps journals on disk)",
      measured: `${micro.engineBytesPerSession.toFixed(0)} B of retained heap per live session`,
      met: micro.engineBytesPerSession <= 1024,
    });
  }
  if (e2e !== undefined) {
    checks.push({
      goal: "routing cost flat in the number of live sessions (read ≤ 1.2× as flat), end to end",
      measured: `${e2e.p50Ratio.toFixed(2)}× p50 (${e2e.small.sessions} → ${e2e.large.sessions} sessions)`,
      met: e2e.p50Ratio <= 1.2,
    });
    checks.push({
      goal: "memory store: an idle session with its journal held in memory (RSS, retained heap)",
      measured: `${(e2e.rssPerSessionBytes / 1024).toFixed(2)} KB RSS, ${(e2e.heapPerSessionBytes / 1024).toFixed(2)} KB retained heap per session`,
      met: undefined,
    });
  }
  return checks;
}

/** Above this many cores of other work in a window, its figures are flagged as disturbed. */
const DISTURBED_CORES = 0.25;

export function disturbance(id: string, machine: MachineLoad | undefined): string[] {
  if (machine === undefined || machine.otherCores <= DISTURBED_CORES) return [];
  return [
    `${id}: other work used ${machine.otherCores.toFixed(2)} of the machine's cores during the window (steal ${machine.stealCores.toFixed(2)})`,
  ];
}
