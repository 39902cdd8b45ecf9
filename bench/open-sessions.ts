import { OPEN_PATH } from "./bench-paths.js";
import { ErrorTally } from "./error-tally.js";
import { replyFrameLength, requestFrame } from "./grpc-frames.js";
import type { H2Pool } from "./h2-client.js";
import { keyOf, type OpenResult, type OpenSpec } from "./load-plan.js";

const EMPTY = new Uint8Array(0);

/**
 * Opens one session per key as fast as the server takes them. Open carries only the key,
 * so what the bridge keeps per session afterwards is the session, not a payload.
 */
export function openSessions(pool: H2Pool, spec: OpenSpec): Promise<OpenResult> {
  const expected = replyFrameLength(0);
  const errors = new ErrorTally();
  const started = performance.now();
  let next = 0;
  let done = 0;
  return new Promise((resolve) => {
    const finish = (): void => {
      const elapsedMs = performance.now() - started;
      resolve({
        count: spec.keys.count,
        ok: done - errors.count,
        errors: errors.count,
        elapsedMs,
        perSec: (done / elapsedMs) * 1000,
        errorSamples: errors.samples,
      });
    };
    const send = (slot: number): void => {
      if (next >= spec.keys.count) return;
      const key = keyOf(spec.keys, next++);
      pool.unary(slot, spec.path ?? OPEN_PATH, requestFrame(key, EMPTY), expected, (failure) => {
        if (failure !== undefined) errors.add(`Open ${key}: ${failure}`);
        done += 1;
        if (done === spec.keys.count) finish();
        else send(slot);
      });
    };
    if (spec.keys.count === 0) finish();
    for (let slot = 0; slot < spec.concurrency; slot++) send(slot);
  });
}
