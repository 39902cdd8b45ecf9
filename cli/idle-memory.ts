import { performance } from "node:perf_hooks";
import v8 from "node:v8";
import { BridgeError } from "../bridge/errors/bridge-error.js";
import { Code } from "../bridge/errors/code.js";
import { Reason } from "../bridge/errors/reason.js";
import type { Logger } from "../bridge/logger.js";

export interface IdleMemoryOptions {
  /** Calls the bridge has in flight now: with any, the bridge is not idle. */
  readonly inflightCalls: () => number;
  /**
   * Calls the bridge has started since it began (any monotonic count). A call started since
   * the last sample makes the bridge busy, even one that already finished: light traffic is
   * not idle, and its callers must not meet the collection's pause.
   */
  readonly callsStarted?: () => number;
  readonly logger: Logger;
  /** How long the bridge must have been quiet before memory is given back. */
  readonly idleMs?: number;
  /** How often activity is sampled. */
  readonly checkIntervalMs?: number;
  /** Share of a sample interval the event loop may have been busy for it to count as quiet. */
  readonly maxEventLoopUtilization?: number;
  /**
   * Growth of the V8 heap's committed size past what the last reduction left that calls
   * for another one (the young generation growing at all always does).
   */
  readonly heapGrowthBytes?: number;
}

/** What one reduction gave back, as logged with "idle memory reduced". */
export interface IdleMemoryReport {
  readonly youngGenerationBytesBefore: number;
  readonly youngGenerationBytes: number;
  readonly heapCommittedBytesBefore: number;
  readonly heapCommittedBytes: number;
  readonly heapUsedBytes: number;
  readonly pauseMs: number;
}

/** Started once the bridge is ready; stopped when it begins to drain. */
export interface IdleMemoryReducer {
  /** Reductions run so far. */
  readonly reductions: number;
  stop(): void;
}

const DEFAULT_IDLE_MS = 10_000;
const DEFAULT_CHECK_INTERVAL_MS = 1_000;
const DEFAULT_MAX_EVENT_LOOP_UTILIZATION = 0.05;
const DEFAULT_HEAP_GROWTH_BYTES = 8 * 1024 * 1024;

/** Committed size of V8's young generation (both semi-spaces). */
export function youngGenerationBytes(): number {
  return v8.getHeapSpaceStatistics().find((s) => s.space_name === "new_space")?.space_size ?? 0;
}

/**
 * Gives back what start-up and bursts of calls grew V8's heap to, once the bridge is idle.
 *
 * Start-up (loading modules, compiling the contracts) and load grow the young generation
 * to 16 MB semi-spaces (32 MB committed), and only a memory-reducing full collection
 * shrinks it again. V8 runs one by itself (its memory reducer) after a while of low
 * allocation, but not reliably: when a full collection already ran during start-up it may
 * never start, and an idle bridge then holds 15–20 MB more than it needs. A forced
 * `gc()` (--expose-gc) is a regular full collection and leaves the young generation as
 * it is; Node 20 exposes no memory-reducing collection outside experimental APIs (v8.queryObjects
 * runs one, with an ExperimentalWarning and a heap walk besides). The
 * inspector protocol's HeapProfiler.collectGarbage, over an in-process session, is V8's
 * low-memory notification: full collections with the reduce-memory flag, which shrink
 * the young generation to its minimum and release the old generation's free pages.
 *
 * That collection stops the bridge's thread for 50–500 ms (two full collections, on a
 * loaded 2-core machine), so it runs only when nobody waits for the bridge: no call in
 * flight and the event loop almost unused for `idleMs`. Under load neither holds, so it
 * never runs there. It runs once after start-up, and again only when the heap grew since
 * (a burst of calls), so an idle bridge does not pay for it repeatedly.
 */
export function startIdleMemoryReducer(options: IdleMemoryOptions): IdleMemoryReducer {
  const idleMs = options.idleMs ?? DEFAULT_IDLE_MS;
  const checkIntervalMs = options.checkIntervalMs ?? DEFAULT_CHECK_INTERVAL_MS;
  const maxUtilization = options.maxEventLoopUtilization ?? DEFAULT_MAX_EVENT_LOOP_UTILIZATION;
  const growthBytes = options.heapGrowthBytes ?? DEFAULT_HEAP_GROWTH_BYTES;
  const { logger } = options;
  for (const [name, value] of Object.entries({ idleMs, checkIntervalMs, heapGrowthBytes: growthBytes })) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new BridgeError(
        Code.INVALID_ARGUMENT,
        Reason.INVALID_CONFIG,
        `${name} must be a positive integer, got ${value}`,
      );
    }
  }
  if (!(maxUtilization > 0 && maxUtilization < 1)) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_CONFIG,
      `maxEventLoopUtilization must be between 0 and 1, got ${maxUtilization}`,
    );
  }

  let reductions = 0;
  let stopped = false;
  let running = false;
  // What the last reduction left; undefined until the first, which always runs.
  let after: { young: number; committed: number } | undefined;
  let quietSince = performance.now();
  let lastUtilization = performance.eventLoopUtilization();
  let lastCallsStarted = options.callsStarted?.() ?? 0;

  const grown = (): boolean => {
    if (after === undefined) return true;
    return (
      youngGenerationBytes() > after.young ||
      v8.getHeapStatistics().total_heap_size > after.committed + growthBytes
    );
  };

  const reduce = async (): Promise<void> => {
    const youngBefore = youngGenerationBytes();
    const committedBefore = v8.getHeapStatistics().total_heap_size;
    const started = performance.now();
    // Loaded on first use: a bridge that never idles never loads it. A Node built without
    // the inspector has no module to load; the bridge then keeps V8's own behaviour.
    // node:inspector, not its promise form: that one is still experimental in Node 20.
    const { Session } = await import("node:inspector");
    const session = new Session();
    session.connect();
    try {
      await new Promise<void>((resolve, reject) => {
        session.post("HeapProfiler.collectGarbage", (error) => (error === null ? resolve() : reject(error)));
      });
    } finally {
      session.disconnect();
    }
    const pauseMs = performance.now() - started;
    const heap = v8.getHeapStatistics();
    after = { young: youngGenerationBytes(), committed: heap.total_heap_size };
    reductions += 1;
    const report: IdleMemoryReport = {
      youngGenerationBytesBefore: youngBefore,
      youngGenerationBytes: after.young,
      heapCommittedBytesBefore: committedBefore,
      heapCommittedBytes: after.committed,
      heapUsedBytes: heap.used_heap_size,
      pauseMs: Math.round(pauseMs * 10) / 10,
    };
    logger.info({ ...report }, "idle memory reduced");
  };

  const check = (): void => {
    if (stopped || running) return;
    const now = performance.now();
    const utilization = performance.eventLoopUtilization(lastUtilization);
    lastUtilization = performance.eventLoopUtilization();
    const callsStarted = options.callsStarted?.() ?? 0;
    const newCalls = callsStarted !== lastCallsStarted;
    lastCallsStarted = callsStarted;
    if (newCalls || options.inflightCalls() > 0 || utilization.utilization > maxUtilization) {
      quietSince = now;
      return;
    }
    if (now - quietSince < idleMs || !grown()) return;
    running = true;
    reduce()
      .catch((error: unknown) => {
        // Nothing is lost without it: the bridge holds more memory, as it did before.
        stopped = true;
        clearInterval(timer);
        logger.warn(
          { error: error instanceof Error ? error.message : String(error) },
          "idle memory reduction unavailable",
        );
      })
      .finally(() => {
        running = false;
        // The collection itself kept the event loop busy: the next quiet period starts now.
        quietSince = performance.now();
        lastUtilization = performance.eventLoopUtilization();
      });
  };

  const timer = setInterval(check, checkIntervalMs);
  // The reducer never keeps the process alive on its own.
  timer.unref();
  return {
    get reductions() {
      return reductions;
    },
    stop() {
      stopped = true;
      clearInterval(timer);
    },
  };
}
