import { expect } from "chai";
import { BridgeError } from "../../../bridge/errors/bridge-error.js";
import type { Code } from "../../../bridge/errors/code.js";

/** Awaits a promise that must reject with a BridgeError of this code and reason. */
export async function expectBridgeError(
  promise: Promise<unknown>,
  code: Code,
  reason: string,
): Promise<BridgeError> {
  let outcome: unknown;
  try {
    await promise;
  } catch (error) {
    outcome = error;
  }
  expect(outcome, "the call should have been rejected").to.be.instanceOf(BridgeError);
  const error = outcome as BridgeError;
  expect({ code: error.code, reason: error.reason }).to.deep.equal({ code, reason });
  return error;
}
