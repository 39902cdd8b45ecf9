import type { UnaryCall, UnaryReply } from "../call/call.js";
import type { CallControl } from "../call/control.js";
import { newId } from "../call/ids.js";
import { forwardable } from "../call/metadata.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import { sessionlessPlace, unaryDeliveryOf } from "./delivery-of.js";
import { type EngineContext, processFor } from "./engine-context.js";
import { callerFault } from "./session-errors.js";

/** Sessionless services: a plain, metadata- and deadline-preserving proxy hop. */
export async function passthroughUnary(
  ctx: EngineContext,
  call: UnaryCall,
  control: CallControl,
): Promise<UnaryReply> {
  if (control.seq !== undefined || control.idempotencyKey !== undefined) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_REQUEST,
      `${call.operation.service} has no sessions: sb-seq and Idempotency-Key do not apply to it`,
    );
  }
  const messageId = newId();
  try {
    const reply = await processFor(ctx, call.operation).unary(
      unaryDeliveryOf(
        call,
        control,
        sessionlessPlace(messageId),
        forwardable(call.metadata),
        call.payload,
        call.signal,
      ),
    );
    return {
      payload: reply.payload,
      sessionId: undefined,
      messageId,
      headers: forwardable(reply.headers),
      trailers: forwardable(reply.trailers),
    };
  } catch (error) {
    const failure = BridgeError.from(error);
    throw callerFault(failure, undefined, messageId);
  }
}
