import { ErrorTally } from "./error-tally.js";
import { replyFrameLength, requestFrame } from "./grpc-frames.js";
import type { H2Pool } from "./h2-client.js";
import { LatencyRecorder } from "./latency.js";
import { type ClosedLoopSpec, keyOf, type LoadResult, type LoadSpec } from "./load-plan.js";
import { LoadWindow, type WindowHooks } from "./load-window.js";

/** How long after the window the calls still outstanding may take. */
const DRAIN_MS = 5_000;

/**
 * Unthrottled: every connection keeps `streamsPerConnection` calls outstanding, sending the
 * next as soon as one returns, like h2load -c N -m M. Latency runs from the send; only
 * calls completing inside the window count.
 */
export function runClosedLoop(
  pool: H2Pool,
  spec: LoadSpec,
  shape: ClosedLoopSpec,
  hooks: WindowHooks,
): Promise<LoadResult> {
  const payload = Buffer.alloc(spec.payloadBytes, 0x5a);
  const expected = replyFrameLength(spec.payloadBytes);
  const latency = new LatencyRecorder();
  const errors = new ErrorTally();
  const slots = pool.connections * shape.streamsPerConnection;
  let ok = 0;
  let next = 0;
  let inflight = 0;

  return new Promise((resolve) => {
    let stopped = false;
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      if (inflight > 0) errors.add(`calls unanswered ${DRAIN_MS} ms after the window`, inflight);
      resolve({
        mode: "closed",
        concurrency: slots,
        targetRatePerSec: undefined,
        windowMs: window.windowMs,
        ok,
        errors: errors.count,
        errorSamples: errors.samples,
        throughputPerSec: (ok / window.windowMs) * 1000,
        latency: latency.summary(),
        serviceLatency: undefined,
        sendLag: undefined,
        unsent: 0,
      });
    };
    const finishIfIdle = (): void => {
      if (stopped && inflight === 0) finish();
    };
    const window = new LoadWindow(spec.warmupMs, spec.measureMs, hooks, () => {
      stopped = true;
      finishIfIdle();
      // A server that stops answering must not hang the run.
      setTimeout(finish, DRAIN_MS).unref();
    });
    const send = (connection: number): void => {
      if (stopped) {
        finishIfIdle();
        return;
      }
      const frame = requestFrame(keyOf(spec.keys, next++), payload);
      const sentAt = performance.now();
      inflight += 1;
      pool.unary(connection, spec.callPath, frame, expected, (failure) => {
        inflight -= 1;
        // Failures count whenever they happen, warm-up included: any is worth knowing.
        if (failure !== undefined) errors.add(failure);
        else if (window.measuring) {
          ok += 1;
          latency.recordMs(performance.now() - sentAt);
        }
        send(connection);
      });
    };
    for (let slot = 0; slot < slots; slot++) send(slot % pool.connections);
  });
}
