import { mkdirSync, rmSync } from "node:fs";
import path from "node:path";
import { CALL_PATH, PLAIN_CALL_PATH, READ_PATH, resultsDir } from "./bench-paths.js";
import { type Peer, type Server, type StoreKind, startBridge } from "./bench-processes.js";
import type { BenchSettings } from "./bench-settings.js";
import { HTTP_PATHS, type HttpPathKind } from "./http-rows.js";
import type { GeneratorJob, LoadResult, OpenResult } from "./load-plan.js";
import { type MachineLoad, measureJob, type ProcessFigures } from "./measure-job.js";

/**
 * What a scenario measures. "direct" is the grpc-go echo server called straight (the
 * reference every ratio divides by); "direct-node" the grpc-js one; "nginx" is nginx
 * grpc_pass in front of the grpc-go server (the peer a bridge is compared with); the
 * bridged paths put a bridge in front of the grpc-go server: sessionless passthrough, a
 * shared operation on one session, and an exclusive one spread over BENCH_SESSIONS
 * sessions, on the memory and the SQLite store.
 */
export type PathKind =
  | "direct"
  | "direct-node"
  | "nginx"
  | "bridged-passthrough"
  | "bridged-passthrough-x2"
  | "bridged-memory-shared"
  | "bridged-memory"
  | "bridged-sqlite-shared"
  | "bridged-sqlite"
  | HttpPathKind;
export type ModeKind = "fixed" | "unthrottled";

export const PATHS: readonly PathKind[] = [
  "direct",
  "direct-node",
  "nginx",
  "bridged-passthrough",
  "bridged-passthrough-x2",
  "bridged-memory-shared",
  "bridged-memory",
  "bridged-sqlite-shared",
  "bridged-sqlite",
  ...HTTP_PATHS,
];
export const MODES: readonly ModeKind[] = ["fixed", "unthrottled"];

interface PathPlan {
  readonly store: StoreKind | undefined;
  readonly callPath: string;
  /** Sessions opened first: 0 for sessionless calls, 1 for the shared operation. */
  readonly sessions: (settings: BenchSettings) => number;
  /**
   * Bridge processes side by side, the generator's connections spread over them in turn:
   * what a group of processes sharing one listening socket (SO_REUSEPORT, or Node's
   * cluster) gets from the kernel spreading connections. Only a sessionless service can be
   * split so: a session needs one owner (S6, S7), and connections do not follow sessions.
   */
  readonly replicas?: number;
  /** The HTTP rows (http-rows.ts): what the generator speaks, which echo, the bridge's ports. */
  readonly protocol?: "connect-json" | "connect-proto";
  readonly echo?: "connect-go";
  readonly httpListener?: boolean;
}

const PLANS: Readonly<Record<PathKind, PathPlan>> = {
  direct: { store: undefined, callPath: CALL_PATH, sessions: () => 0 },
  "direct-node": { store: undefined, callPath: CALL_PATH, sessions: () => 0 },
  nginx: { store: undefined, callPath: CALL_PATH, sessions: () => 0 },
  "bridged-passthrough": { store: "memory", callPath: PLAIN_CALL_PATH, sessions: () => 0 },
  "bridged-passthrough-x2": { store: "memory", callPath: PLAIN_CALL_PATH, sessions: () => 0, replicas: 2 },
  "bridged-memory-shared": { store: "memory", callPath: READ_PATH, sessions: () => 1 },
  "bridged-memory": { store: "memory", callPath: CALL_PATH, sessions: (s) => s.sessions },
  "bridged-sqlite-shared": { store: "sqlite", callPath: READ_PATH, sessions: () => 1 },
  "bridged-sqlite": { store: "sqlite", callPath: CALL_PATH, sessions: (s) => s.sessions },
  "http-grpc-direct": { store: undefined, callPath: CALL_PATH, sessions: () => 0 },
  "http-json-bridged": {
    store: "memory",
    callPath: CALL_PATH,
    sessions: (s) => s.sessions,
    protocol: "connect-json",
    httpListener: true,
  },
  "http-connect-direct": {
    store: undefined,
    callPath: CALL_PATH,
    sessions: () => 0,
    protocol: "connect-proto",
    echo: "connect-go",
  },
  "http-connect-bridged": {
    store: "memory",
    callPath: CALL_PATH,
    sessions: (s) => s.sessions,
    protocol: "connect-proto",
    echo: "connect-go",
    httpListener: true,
  },
};

/** Garbage collection in the bridge over the window (perf_hooks). */
export interface GcFigures {
  readonly count: number;
  readonly totalMs: number;
  readonly maxPauseMs: number;
  /** V8 heap bytes allocated over the window (v8.GCProfiler), and per completed call. */
  readonly allocatedBytes?: number;
  readonly allocatedBytesPerCall?: number;
  /** Young-generation collections, full (mark-compact) ones, and bytes scavenges promoted to the old space. */
  readonly scavenges?: number;
  readonly majors?: number;
  readonly promotedBytesPerCall?: number;
  /** Pauses over 5 ms, and count, total and longest pause by kind (minor, major, incremental, weakcb). */
  readonly pausesOver5ms?: number;
  readonly byKind?: Readonly<
    Record<string, { count: number; totalMs: number; maxMs: number; over5ms: number }>
  >;
}

export interface ScenarioResult {
  readonly id: string;
  readonly path: PathKind;
  readonly mode: ModeKind;
  readonly sessions: number;
  readonly connections: number;
  readonly open: OpenResult | undefined;
  readonly load: LoadResult;
  /** The bridge, or nginx on the nginx path; undefined on the direct paths. */
  readonly bridge: ProcessFigures | undefined;
  readonly bridgeGc: GcFigures | undefined;
  readonly echo: ProcessFigures;
  readonly generator: ProcessFigures;
  /** How busy the whole machine was in the window, and how much of that was other work. */
  readonly machine: MachineLoad | undefined;
}

export const scenarioId = (p: PathKind, mode: ModeKind): string => `${p}/${mode}`;

/** Where --cpu-prof writes (a .tmp directory: ignored by git). */
export const profileDir = (): string => path.join(resultsDir(), "profile.tmp");

/** Where BENCH_TRACE writes a scenario's traces: <dir>/<id>.calls.json, .bridge.json, .bridge-stdout.log. */
export const traceDir = (): string => path.join(resultsDir(), "trace.tmp");
export const traceBase = (id: string): string => path.join(traceDir(), id.replace("/", "-"));

/** The servers every scenario reuses; nginx may be missing (with the reason). */
export interface Servers {
  readonly goEcho: Peer;
  readonly nodeEcho: Peer;
  readonly nginx: Peer | { readonly skipped: string };
  /** The connect-go echo of the HTTP rows; started only when they run. */
  readonly connectEcho?: Peer | undefined;
}

/**
 * One load scenario: a fresh bridge (for the bridged paths) so no scenario inherits
 * another's sessions or journal, the sessions its plan needs opened first, then the
 * measured load. The fixed rate runs over BENCH_FIXED_CONNECTIONS connections.
 */
export async function runScenario(
  servers: Servers,
  p: PathKind,
  mode: ModeKind,
  settings: BenchSettings,
): Promise<ScenarioResult> {
  const id = scenarioId(p, mode);
  const plan = PLANS[p];
  const echo =
    p === "direct-node"
      ? servers.nodeEcho
      : plan.echo === "connect-go"
        ? (servers.connectEcho ?? missing("the connect-go echo"))
        : servers.goEcho;
  let front: Peer | undefined;
  let bridge: Server | undefined;
  const others: Server[] = [];
  // Traced fixed-rate rows: the bridge's V8 lines (--trace-gc-nvp) and pauses, the calls' times.
  const trace = settings.trace && mode === "fixed" ? traceBase(id) : undefined;
  if (trace !== undefined) {
    mkdirSync(traceDir(), { recursive: true });
    rmSync(`${trace}.bridge-stdout.log`, { force: true });
  }
  if (p === "nginx") {
    if (!("address" in servers.nginx)) throw new Error(`nginx skipped: ${servers.nginx.skipped}`);
    front = servers.nginx;
  } else if (plan.store !== undefined) {
    bridge = await startBridge(echo, plan.store, {
      ...(trace === undefined ? {} : { otherLinesFile: `${trace}.bridge-stdout.log` }),
      ...(settings.cpuProfile === id ? { cpuProfileDir: profileDir() } : {}),
      ...(plan.httpListener === true ? { httpListener: true } : {}),
      ...(plan.echo === "connect-go" ? { connectOutbound: true } : {}),
    });
    front = bridge;
    for (let i = 1; i < (plan.replicas ?? 1); i++) others.push(await startBridge(echo, plan.store));
  }
  try {
    const sessions = plan.sessions(settings);
    // Sessionless paths still send a key (ignored); sessionful ones call the opened sessions.
    const keys = { prefix: "s", from: 0, count: Math.max(1, sessions) };
    const connections = mode === "fixed" ? settings.fixedConnections : settings.connections;
    const job: GeneratorJob = {
      ...(plan.protocol === undefined ? {} : { protocol: plan.protocol }),
      target: [front?.address ?? echo.address, ...others.map((o) => o.address)].join(","),
      connections,
      ...(sessions > 0 ? { open: { keys, concurrency: Math.min(sessions, 16) } } : {}),
      load: {
        shape:
          mode === "fixed"
            ? { mode: "fixed", ratePerSec: settings.ratePerSec, maxInFlight: settings.maxInFlight }
            : { mode: "closed", streamsPerConnection: settings.streamsPerConnection },
        callPath: plan.callPath,
        keys,
        payloadBytes: settings.payloadBytes,
        warmupMs: settings.warmupSeconds * 1000,
        measureMs: settings.measureSeconds * 1000,
        ...(trace === undefined ? {} : { traceFile: `${trace}.calls.json` }),
      },
    };
    const watch: Record<string, number> = { echo: echo.pid };
    if (front !== undefined) watch.bridge = front.pid;
    others.forEach((other, i) => {
      watch[`bridge${i + 2}`] = other.pid;
    });
    // The tally's answer is waited for from the moment it is asked for: a line nobody waits
    // for is dropped.
    let gcReply: Promise<Record<string, unknown>> | undefined;
    let heapWritten: Promise<Record<string, unknown>> | undefined;
    const heapFile =
      settings.heapProfile === id && bridge !== undefined
        ? path.join(profileDir(), `${id.replace("/", "-")}.heapprofile`)
        : undefined;
    if (heapFile !== undefined) mkdirSync(profileDir(), { recursive: true });
    const { result, processes, machine } = await measureJob(
      job,
      watch,
      front === undefined ? [] : ["bridge", ...others.map((_, i) => `bridge${i + 2}`)],
      bridge === undefined
        ? {}
        : {
            onMeasureStart: () => {
              bridge?.child.send("gc-reset");
              if (heapFile !== undefined) bridge?.child.send("heap-start");
            },
            onMeasureEnd: () => {
              gcReply = bridge?.child.next("gc");
              gcReply?.catch(() => undefined);
              bridge?.child.send("gc");
              if (heapFile !== undefined) {
                heapWritten = bridge?.child.next("heap-written");
                heapWritten?.catch(() => undefined);
                bridge?.child.send(`heap-stop ${heapFile}`);
              }
            },
          },
    );
    let bridgeGc: GcFigures | undefined;
    if (gcReply !== undefined) {
      const gc = await gcReply;
      // Side-by-side bridges split the calls: the first one's tally is per call it handled.
      const calls = Math.max(1, (result.load?.ok ?? 0) / (others.length + 1));
      bridgeGc = {
        count: Number(gc.count),
        totalMs: Number(gc.totalMs),
        maxPauseMs: Number(gc.maxMs),
        allocatedBytes: Number(gc.allocatedBytes),
        allocatedBytesPerCall: Number(gc.allocatedBytes) / calls,
        scavenges: Number(gc.scavenges),
        majors: Number(gc.majors),
        promotedBytesPerCall: Number(gc.promotedBytes) / calls,
        pausesOver5ms: Number(gc.over5ms),
        byKind: gc.byKind as NonNullable<GcFigures["byKind"]>,
      };
    }
    if (heapWritten !== undefined) await heapWritten;
    // After the drain, so pauses that slowed the window's last calls are in it too.
    if (trace !== undefined && bridge !== undefined) {
      const written = bridge.child.next("trace-written");
      bridge.child.send(`trace ${trace}.bridge.json`);
      await written;
    }
    if (result.load === undefined) throw new Error(`${id}: the generator returned no load result`);
    return {
      id,
      path: p,
      mode,
      sessions,
      connections,
      open: result.open,
      load: result.load,
      bridge: others.length === 0 ? processes.bridge : together(others.length + 1, processes),
      bridgeGc,
      echo: processes.echo as ProcessFigures,
      generator: processes.generator as ProcessFigures,
      machine,
    };
  } finally {
    await bridge?.stop();
    for (const other of others) await other.stop();
  }
}

function missing(what: string): never {
  throw new Error(`${what} is not running`);
}

/** Side-by-side bridges as one proxy: CPU added up, RSS added up (peak: the sum of peaks). */
function together(count: number, processes: Record<string, ProcessFigures>): ProcessFigures | undefined {
  const all = Array.from({ length: count }, (_, i) => processes[i === 0 ? "bridge" : `bridge${i + 1}`]);
  if (all.some((x) => x === undefined)) return undefined;
  const figures = all as ProcessFigures[];
  const sum = (pick: (x: ProcessFigures) => number | undefined): number | undefined =>
    figures.some((x) => pick(x) === undefined)
      ? undefined
      : figures.reduce((n, x) => n + (pick(x) as number), 0);
  return {
    cpuSeconds: sum((x) => x.cpuSeconds) as number,
    cpuCores: sum((x) => x.cpuCores) as number,
    cpuSecondsPer1000: sum((x) => x.cpuSecondsPer1000) as number,
    rssPeakBytes: sum((x) => x.rssPeakBytes),
    rssEndBytes: sum((x) => x.rssEndBytes),
    writtenBytes: sum((x) => x.writtenBytes),
    writtenBytesPerCall: sum((x) => x.writtenBytesPerCall),
  };
}

/** Why a scenario does not count: more than 0.1% errors, or a fixed rate not reached. */
export function scenarioProblems(result: ScenarioResult): string[] {
  const problems: string[] = [];
  const { load, open } = result;
  const calls = load.ok + load.errors;
  if (calls === 0) problems.push(`${result.id}: no calls completed`);
  else if (load.errors / calls > 0.001) {
    problems.push(
      `${result.id}: ${load.errors} errors in ${calls} calls (> 0.1%): ${load.errorSamples.join("; ")}`,
    );
  }
  if (open !== undefined && open.errors > 0) {
    problems.push(
      `${result.id}: ${open.errors} of ${open.count} Open calls failed: ${open.errorSamples.join("; ")}`,
    );
  }
  if (load.targetRatePerSec !== undefined) {
    if (load.throughputPerSec < load.targetRatePerSec * 0.97 || load.unsent > 0) {
      problems.push(
        `${result.id}: did not reach its fixed rate: ${load.throughputPerSec.toFixed(0)} of ${load.targetRatePerSec} req/s` +
          (load.unsent > 0 ? `, ${load.unsent} scheduled calls never sent` : ""),
      );
    }
  }
  return problems;
}
