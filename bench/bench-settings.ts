/**
 * Run length and load shape, from the environment. The defaults keep a full run to about
 * three to four minutes on a 2-core machine while giving each window ten thousand calls or
 * more.
 */
export interface BenchSettings {
  /** Measured window of every load scenario (BENCH_SECONDS). */
  readonly measureSeconds: number;
  /** Warm-up before each window (BENCH_WARMUP_SECONDS). */
  readonly warmupSeconds: number;
  /** Fixed-rate scenarios (BENCH_RATE), req/s. */
  readonly ratePerSec: number;
  /** Connections of the fixed-rate scenarios (BENCH_FIXED_CONNECTIONS). */
  readonly fixedConnections: number;
  /** Bound on calls outstanding at the fixed rate (BENCH_MAX_IN_FLIGHT). */
  readonly maxInFlight: number;
  /** Sessions opened before the load and used round-robin (BENCH_SESSIONS). */
  readonly sessions: number;
  /** Connections and streams per connection of the unthrottled scenarios (BENCH_CONNECTIONS, BENCH_STREAMS). */
  readonly connections: number;
  readonly streamsPerConnection: number;
  readonly payloadBytes: number;
  /** Routing at scale: the small and large live-session counts (BENCH_ROUTING_SMALL, BENCH_ROUTING_LARGE). */
  readonly routingSmall: number;
  readonly routingLarge: number;
  /** Measured window of the two end-to-end routing measurements (BENCH_ROUTING_SECONDS). */
  readonly routingSeconds: number;
  /**
   * Their fixed rate (BENCH_ROUTING_RATE): below the bridge's capacity on a small machine,
   * so the p50 reflects the work per call rather than queueing.
   */
  readonly routingRatePerSec: number;
  /** Idle bridges measured one after another for the idle row (BENCH_IDLE_RUNS); the median is reported. */
  readonly idleRuns: number;
  /** Scenario id whose bridge child runs with --cpu-prof (BENCH_CPU_PROF), e.g. "bridged-memory/unthrottled". */
  readonly cpuProfile: string | undefined;
  /** Scenario id whose bridge samples its heap allocations over the window (BENCH_HEAP_PROF). */
  readonly heapProfile: string | undefined;
  /**
   * BENCH_TRACE=1: fixed-rate rows write every call's times, the bridge's and the
   * generator's GC pauses and event-loop stalls, and what the bridge printed that is not
   * JSON (V8's --trace-gc-nvp lines) into results/trace.tmp/ (read with stall-match.js).
   */
  readonly trace: boolean;
  /** Comma-separated scenario ids or groups to run (BENCH_ONLY); everything by default. */
  readonly only: readonly string[] | undefined;
}

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${raw}`);
  return value;
}

export function benchSettings(): BenchSettings {
  const only = process.env.BENCH_ONLY;
  return {
    measureSeconds: positive("BENCH_SECONDS", 10),
    warmupSeconds: positive("BENCH_WARMUP_SECONDS", 2),
    ratePerSec: positive("BENCH_RATE", 1000),
    fixedConnections: positive("BENCH_FIXED_CONNECTIONS", 64),
    maxInFlight: positive("BENCH_MAX_IN_FLIGHT", 256),
    sessions: positive("BENCH_SESSIONS", 64),
    connections: positive("BENCH_CONNECTIONS", 4),
    streamsPerConnection: positive("BENCH_STREAMS", 16),
    payloadBytes: positive("BENCH_PAYLOAD_BYTES", 1024),
    routingSmall: positive("BENCH_ROUTING_SMALL", 1000),
    routingLarge: positive("BENCH_ROUTING_LARGE", 100_000),
    routingSeconds: positive("BENCH_ROUTING_SECONDS", 5),
    routingRatePerSec: positive("BENCH_ROUTING_RATE", 500),
    idleRuns: positive("BENCH_IDLE_RUNS", 3),
    cpuProfile: process.env.BENCH_CPU_PROF || undefined,
    heapProfile: process.env.BENCH_HEAP_PROF || undefined,
    trace: process.env.BENCH_TRACE === "1",
    only: only ? only.split(",").map((s) => s.trim()) : undefined,
  };
}
