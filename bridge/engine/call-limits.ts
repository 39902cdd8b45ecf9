import type { CallContext } from "../call/call.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";

/** Longest delay AbortSignal.timeout takes; it throws for fractions and larger values. */
const MAX_TIMEOUT_MS = 2 ** 31 - 1;

/** Aborts a wait for a turn when the caller leaves or its deadline passes (S15). */
export function waitSignal(call: CallContext): AbortSignal {
  if (call.deadlineMs === undefined) return call.signal;
  const remaining = Math.min(MAX_TIMEOUT_MS, Math.max(0, Math.ceil(call.deadlineMs - Date.now())));
  return AbortSignal.any([call.signal, AbortSignal.timeout(remaining)]);
}

export function checkPayloadSize(payload: Uint8Array, limit: number): void {
  if (payload.byteLength > limit) {
    throw new BridgeError(
      Code.RESOURCE_EXHAUSTED,
      Reason.INVALID_REQUEST,
      `request message of ${payload.byteLength} bytes exceeds the limit of ${limit}`,
    );
  }
}
