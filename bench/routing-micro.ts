import v8 from "node:v8";
import { runInNewContext } from "node:vm";
import { newId } from "../bridge/call/ids.js";
import { loadBridgeSetup } from "../bridge/config/check-config.js";
import type { OperationContract, ServiceContract } from "../bridge/contracts/contract.js";
import { extractCorrelation } from "../bridge/contracts/correlation.js";
import { LiveSession } from "../bridge/engine/live-session.js";
import { SessionRegistry } from "../bridge/engine/session-registry.js";
import type { SessionRecord } from "../bridge/store/records.js";
import { benchConfigFile, CALL_PATH, ECHO_SERVICE } from "./bench-paths.js";
import { FRAME_HEADER_BYTES, requestFrame } from "./grpc-frames.js";
import { LatencyRecorder } from "./latency.js";

/** Nanoseconds per routing step, as percentiles of batch means. */
export interface StepNs {
  readonly p50Ns: number;
  readonly p99Ns: number;
  readonly meanNs: number;
}

export interface MicroSize {
  readonly sessions: number;
  /** extractCorrelation on the request bytes + registry lookup: what routing costs per call. */
  readonly route: StepNs;
  /** The registry lookup alone, with the key already extracted. */
  readonly lookup: StepNs;
}

export interface RoutingMicroResult {
  readonly batch: number;
  readonly sizes: readonly MicroSize[];
  /** Largest ÷ smallest size, route p50 and lookup p50. */
  readonly routeP50Ratio: number;
  readonly lookupP50Ratio: number;
  /**
   * V8 heap retained per live session by the engine's own state (the session, its
   * correlation index entry, its turn queue), measured after a full GC on the largest size.
   */
  readonly engineBytesPerSession: number;
}

const BATCH = 1000;
const ROUNDS = 8;
const BATCHES_PER_ROUND = 200;
/** Distinct requests per size: every session up to this many, spread evenly beyond it. */
const MAX_REQUESTS = 8192;

interface Fixture {
  readonly sessions: number;
  readonly registry: SessionRegistry;
  readonly requests: readonly Uint8Array[];
  readonly keys: readonly string[];
}

/**
 * The routing step in-process, with nothing else running: the correlation key read from a
 * real 1 KB EchoRequest, then the live session found by it, among N registered sessions.
 * Sizes are measured in alternating rounds so drift (CPU frequency, a neighbour's load)
 * hits all of them alike. Timing is per batch of BATCH steps: a single step is shorter than
 * the clock's own overhead.
 */
export function runRoutingMicro(sizes: readonly number[], payloadBytes: number): RoutingMicroResult {
  const setup = loadBridgeSetup({ file: benchConfigFile(), overrides: { store: "memory" } });
  const op = setup.contracts.operations.get(CALL_PATH);
  const service = setup.contracts.services.get(ECHO_SERVICE);
  if (op === undefined || service === undefined) throw new Error(`${CALL_PATH} is not in the bench contract`);
  const payload = Buffer.alloc(payloadBytes, 0x5a);
  const fixtures = sizes.map((n) => fixture(op, service, n, payload));

  const route = fixtures.map(() => new LatencyRecorder());
  const lookup = fixtures.map(() => new LatencyRecorder());
  let found = 0;
  for (let round = 0; round <= ROUNDS; round++) {
    fixtures.forEach((f, i) => {
      // Round 0 warms the JIT and is not recorded.
      const routeNs = timeBatches(f, (r, k) => {
        const correlation = extractCorrelation(op, f.requests[r] as Uint8Array);
        if (f.registry.byCorrelation(ECHO_SERVICE, correlation.key) !== undefined) found += 1;
        return k;
      });
      const lookupNs = timeBatches(f, (_r, k) => {
        if (f.registry.byCorrelation(ECHO_SERVICE, f.keys[k] as string) !== undefined) found += 1;
        return k;
      });
      if (round === 0) return;
      for (const ns of routeNs) route[i]?.record(ns);
      for (const ns of lookupNs) lookup[i]?.record(ns);
    });
  }
  const expected = 2 * (ROUNDS + 1) * BATCHES_PER_ROUND * BATCH * fixtures.length;
  if (found !== expected) throw new Error(`routing micro-benchmark: ${expected - found} lookups missed`);

  const result = fixtures.map((f, i) => ({
    sessions: f.sessions,
    route: stepNs(route[i] as LatencyRecorder),
    lookup: stepNs(lookup[i] as LatencyRecorder),
  }));
  const first = result[0];
  const last = result[result.length - 1];
  return {
    batch: BATCH,
    sizes: result,
    routeP50Ratio: first && last ? last.route.p50Ns / first.route.p50Ns : Number.NaN,
    lookupP50Ratio: first && last ? last.lookup.p50Ns / first.lookup.p50Ns : Number.NaN,
    engineBytesPerSession: engineBytesPerSession(op, service, Math.max(...sizes), payload),
  };
}

/** Heap retained by `sessions` registered live sessions, per session, after full GCs. */
function engineBytesPerSession(
  op: OperationContract,
  service: ServiceContract,
  sessions: number,
  payload: Buffer,
): number {
  v8.setFlagsFromString("--expose-gc");
  const gc = runInNewContext("gc") as () => void;
  gc();
  const before = process.memoryUsage().heapUsed;
  const registry = sessionRegistry(op, service, sessions, payload);
  gc();
  const after = process.memoryUsage().heapUsed;
  if (registry.size !== sessions) throw new Error("registry lost sessions");
  return (after - before) / sessions;
}

function fixture(
  op: OperationContract,
  service: ServiceContract,
  sessions: number,
  payload: Buffer,
): Fixture {
  const registry = sessionRegistry(op, service, sessions, payload);
  const count = Math.min(sessions, MAX_REQUESTS);
  const picks = Array.from({ length: count }, (_, j) => Math.floor((j * sessions) / count));
  return {
    sessions,
    registry,
    requests: picks.map((i) => requestFrame(key(i), payload).subarray(FRAME_HEADER_BYTES)),
    keys: picks.map((i) => correlationKey(op, i, payload)),
  };
}

const key = (i: number): string => `m${i}`;

function correlationKey(op: OperationContract, i: number, payload: Buffer): string {
  return extractCorrelation(op, requestFrame(key(i), payload).subarray(FRAME_HEADER_BYTES)).key;
}

/** `sessions` live sessions as the engine holds them, each with its own id and key. */
function sessionRegistry(
  op: OperationContract,
  service: ServiceContract,
  sessions: number,
  payload: Buffer,
): SessionRegistry {
  const registry = new SessionRegistry();
  const now = Date.now();
  for (let i = 0; i < sessions; i++) {
    const record: SessionRecord = {
      id: newId(),
      service: service.name,
      state: "active",
      endReason: undefined,
      correlationSet: "k",
      correlation: { key: key(i) },
      correlationKey: correlationKey(op, i, payload),
      principal: "anonymous",
      createdAtMs: now,
      lastActiveAtMs: now,
      endedAtMs: undefined,
      idleTimeoutMs: 30 * 60_000,
      maxLifetimeMs: 24 * 60 * 60_000,
      nextSeq: 1,
      journalLength: 0,
    };
    registry.add(new LiveSession(record, service, false));
  }
  return registry;
}

/** Per-step ns of BATCHES_PER_ROUND batches, cycling through the fixture's requests. */
function timeBatches(f: Fixture, step: (request: number, key: number) => number): number[] {
  const out: number[] = [];
  let r = 0;
  for (let b = 0; b < BATCHES_PER_ROUND; b++) {
    const start = process.hrtime.bigint();
    for (let j = 0; j < BATCH; j++) {
      step(r, r);
      r = r + 1 === f.requests.length ? 0 : r + 1;
    }
    out.push(Number(process.hrtime.bigint() - start) / BATCH);
  }
  return out;
}

function stepNs(recorder: LatencyRecorder): StepNs {
  const s = recorder.summary();
  return { p50Ns: s.p50Us, p99Ns: s.p99Us, meanNs: s.meanUs };
}
