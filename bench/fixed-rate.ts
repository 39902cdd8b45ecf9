import type { CallLog } from "./call-log.js";
import { ErrorTally } from "./error-tally.js";
import { replyFrameLength, requestFrame } from "./grpc-frames.js";
import type { H2Pool } from "./h2-client.js";
import { LatencyRecorder } from "./latency.js";
import { type FixedRateSpec, keyOf, type LoadResult, type LoadSpec } from "./load-plan.js";
import { LoadWindow, type WindowHooks } from "./load-window.js";

/** How long after the window stragglers may still be sent and answered. */
const DRAIN_MS = 5_000;

/**
 * Open loop at a fixed rate (like wrk2): call i is due at start + i/rate whatever happened
 * to earlier calls, and its latency runs from that due time, so a stall shows up as the
 * latency of every call it delayed instead of silently lowering the rate (coordinated
 * omission). Calls due in the window are all waited for, up to DRAIN_MS.
 *
 * The schedule restarts when the window opens: calls the warm-up fell behind on (a cold
 * JIT is slow) are dropped rather than carried into the window, where a backlog that only
 * a cold start caused would be measured as the steady state. A backlog the window itself
 * builds stays and is reported.
 */
export function runFixedRate(
  pool: H2Pool,
  spec: LoadSpec,
  shape: FixedRateSpec,
  hooks: WindowHooks,
  calls?: CallLog,
): Promise<LoadResult> {
  const payload = Buffer.alloc(spec.payloadBytes, 0x5a);
  const expected = replyFrameLength(spec.payloadBytes);
  const intervalMs = 1000 / shape.ratePerSec;
  const latency = new LatencyRecorder();
  const service = new LatencyRecorder();
  const lag = new LatencyRecorder();
  const errors = new ErrorTally();
  let ok = 0;
  let next = 0;
  let inflight = 0;
  let timer: NodeJS.Timeout | undefined;
  let timerAt = Number.POSITIVE_INFINITY;
  let finished = false;
  // Call i is due at anchorMs + (i - anchorIndex) · interval; re-anchored when the window opens.
  let anchorMs = 0;
  let anchorIndex = 0;
  let anchored = false;
  const dueOf = (i: number): number => anchorMs + (i - anchorIndex) * intervalMs;

  return new Promise((resolve) => {
    const window = new LoadWindow(
      spec.warmupMs,
      spec.measureMs,
      {
        onMeasureStart: () => {
          anchorMs = window.warmupEndMs;
          anchorIndex = next;
          anchored = true;
          hooks.onMeasureStart();
          pump();
        },
        onMeasureEnd: () => hooks.onMeasureEnd(),
      },
      () => pump(),
    );
    anchorMs = window.startMs;
    const lastDue = window.measureEndMs;
    const giveUpAt = window.measureEndMs + DRAIN_MS;
    // Whatever happens (a server that stops answering included), the run ends here.
    const deadline = setTimeout(() => finish(), giveUpAt - window.startMs);
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearTimeout(deadline);
      if (timer !== undefined) clearTimeout(timer);
      const scheduled = Math.ceil(spec.measureMs / intervalMs);
      if (inflight > 0) errors.add(`calls unanswered ${DRAIN_MS} ms after the window`, inflight);
      resolve({
        mode: "fixed",
        concurrency: shape.maxInFlight,
        targetRatePerSec: shape.ratePerSec,
        windowMs: window.windowMs,
        ok,
        errors: errors.count,
        errorSamples: errors.samples,
        throughputPerSec: (ok / window.windowMs) * 1000,
        latency: latency.summary(),
        serviceLatency: service.summary(),
        sendLag: lag.summary(),
        unsent: anchored ? Math.max(0, scheduled - (next - anchorIndex)) : scheduled,
      });
    };
    const send = (dueAt: number, now: number): void => {
      const inWindow = anchored;
      const frame = requestFrame(keyOf(spec.keys, next++), payload);
      inflight += 1;
      if (inWindow) lag.recordMs(now - dueAt);
      const sentAt = performance.now();
      pool.unary(next % pool.connections, spec.callPath, frame, expected, (failure) => {
        inflight -= 1;
        const end = performance.now();
        if (failure !== undefined) errors.add(failure);
        else {
          // Throughput counts completions inside the window, as in the closed loop.
          if (window.measuring) ok += 1;
          if (inWindow) {
            latency.recordMs(end - dueAt);
            service.recordMs(end - sentAt);
            calls?.record(dueAt, sentAt, end);
          }
        }
        pump();
      });
    };
    // Sends whatever is due; runs on its timer and after every completion, which keeps
    // sends close to their schedule despite the 1 ms granularity of timers.
    const pump = (): void => {
      if (finished) return;
      const now = performance.now();
      // The warm-up never sends what is due after it: that belongs to the window's schedule.
      const until = anchored ? lastDue : window.warmupEndMs;
      let dueAt = dueOf(next);
      while (dueAt < until && dueAt <= now && inflight < shape.maxInFlight) {
        send(dueAt, now);
        dueAt = dueOf(next);
      }
      if (!anchored && dueAt >= until) return;
      if (dueAt >= lastDue) {
        if (inflight === 0 && window.phase === "done") finish();
        return;
      }
      // At the in-flight bound the next completion pumps; no timer needed. A timer already
      // armed early enough is kept rather than replaced on every completion.
      if (inflight >= shape.maxInFlight || timerAt <= dueAt) return;
      if (timer !== undefined) clearTimeout(timer);
      timerAt = dueAt;
      timer = setTimeout(onTimer, Math.max(0, dueAt - now));
    };
    const onTimer = (): void => {
      timer = undefined;
      timerAt = Number.POSITIVE_INFINITY;
      pump();
    };
    pump();
  });
}
