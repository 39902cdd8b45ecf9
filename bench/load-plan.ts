import type { LatencySummary } from "./latency.js";

/** The keys a job uses: `${prefix}${from}` … `${prefix}${from + count - 1}`. */
export interface KeyRange {
  readonly prefix: string;
  readonly from: number;
  readonly count: number;
}

/** Opens one session per key (Open), `concurrency` calls at a time. */
export interface OpenSpec {
  readonly keys: KeyRange;
  readonly concurrency: number;
  /** The starter called; /bench.v1.Echo/Open unless given. */
  readonly path?: string;
}

/** Open loop: `ratePerSec` calls on a fixed schedule, at most `maxInFlight` outstanding. */
export interface FixedRateSpec {
  readonly mode: "fixed";
  readonly ratePerSec: number;
  readonly maxInFlight: number;
}

/** Closed loop: `streamsPerConnection` calls outstanding on every connection, always. */
export interface ClosedLoopSpec {
  readonly mode: "closed";
  readonly streamsPerConnection: number;
}

export interface LoadSpec {
  readonly shape: FixedRateSpec | ClosedLoopSpec;
  /** The gRPC method called, e.g. /bench.v1.Echo/Call. */
  readonly callPath: string;
  /** Calls go round-robin over these (already open) sessions. */
  readonly keys: KeyRange;
  readonly payloadBytes: number;
  readonly warmupMs: number;
  readonly measureMs: number;
  /**
   * Fixed rate only (BENCH_TRACE): write every call's times and the generator's own pauses
   * here as JSON when the run ends (see stall-match.ts).
   */
  readonly traceFile?: string;
}

/** One job for a load generator child: optionally open sessions, then optionally load. */
export interface GeneratorJob {
  /** host:port of the gRPC server (the echo process or a bridge); several, comma-separated, share the connections. */
  readonly target: string;
  /** What the calls speak: gRPC (the default), or Connect unary with JSON or proto (the HTTP rows). */
  readonly protocol?: "grpc" | "connect-json" | "connect-proto";
  readonly connections: number;
  readonly open?: OpenSpec;
  readonly load?: LoadSpec;
}

export interface OpenResult {
  readonly count: number;
  readonly ok: number;
  readonly errors: number;
  readonly elapsedMs: number;
  readonly perSec: number;
  readonly errorSamples: readonly string[];
}

export interface LoadResult {
  readonly mode: "fixed" | "closed";
  /** Calls allowed outstanding at once: connections × streams (closed) or the bound (fixed). */
  readonly concurrency: number;
  readonly targetRatePerSec: number | undefined;
  /** The measured window as it really ran, ms. */
  readonly windowMs: number;
  /** Successful calls completed inside the window. */
  readonly ok: number;
  /** Failed calls, warm-up and the wait for stragglers included. */
  readonly errors: number;
  readonly errorSamples: readonly string[];
  readonly throughputPerSec: number;
  /** Closed loop: from send; fixed rate: from the scheduled send time (no coordinated omission). */
  readonly latency: LatencySummary;
  /** Fixed rate only: from the actual send, and how late sends left against the schedule. */
  readonly serviceLatency: LatencySummary | undefined;
  readonly sendLag: LatencySummary | undefined;
  /** Fixed rate only: scheduled calls never sent because the generator fell too far behind. */
  readonly unsent: number;
}

export interface GeneratorResult {
  readonly open: OpenResult | undefined;
  readonly load: LoadResult | undefined;
}

/** Messages from a generator child to the bench, over the IPC channel. */
export type GeneratorMessage =
  | { readonly type: "measure-start" }
  | { readonly type: "measure-end" }
  | { readonly type: "result"; readonly result: GeneratorResult }
  | { readonly type: "failed"; readonly message: string };

export function keyOf(keys: KeyRange, index: number): string {
  return `${keys.prefix}${keys.from + (index % keys.count)}`;
}
