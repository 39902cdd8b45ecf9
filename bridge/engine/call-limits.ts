import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";

export function checkPayloadSize(payload: Uint8Array, limit: number): void {
  if (payload.byteLength > limit) {
    throw new BridgeError(
      Code.RESOURCE_EXHAUSTED,
      Reason.INVALID_REQUEST,
      `request message of ${payload.byteLength} bytes exceeds the limit of ${limit}`,
    );
  }
}
