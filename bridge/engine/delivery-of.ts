import type { CallContext } from "../call/call.js";
import type { CallControl } from "../call/control.js";
import { forwardable, type Metadata } from "../call/metadata.js";
import type { Delivery, UnaryDelivery } from "../process/process-client.js";

/** Where in a session a delivery belongs; all empty for sessionless services. */
export interface DeliveryPlace {
  readonly messageId: string;
  readonly sessionId: string | undefined;
  readonly correlation: Readonly<Record<string, string>>;
  readonly seq: number;
  readonly oneWay: boolean;
}

/**
 * The delivery of a caller's message to its process: the caller's facts, filtered (S13,
 * S15), plus where it belongs. Every path to a process builds it here.
 */
export function deliveryOf(
  call: CallContext,
  control: CallControl,
  place: DeliveryPlace,
  forwarded: Metadata = forwardable(call.metadata),
): Delivery {
  // Spelled out rather than spread: this runs for every delivery.
  return {
    messageId: place.messageId,
    sessionId: place.sessionId,
    correlation: place.correlation,
    seq: place.seq,
    oneWay: place.oneWay,
    operation: call.operation,
    principal: call.principal,
    metadata: forwarded,
    traceparent: control.traceparent,
    tracestate: control.tracestate,
    deadlineMs: call.deadlineMs,
    signal: call.signal,
    codec: call.codec,
  };
}

export function sessionlessPlace(messageId: string): DeliveryPlace {
  return { messageId, sessionId: undefined, correlation: {}, seq: 0, oneWay: false };
}

/**
 * A unary delivery: deliveryOf() with the payload, and with `signal` in place of the
 * caller's (a delivery in a session is not cancelled with its caller, S9), built as one
 * object rather than spread twice: this runs for every unary call (DESIGN §6).
 */
export function unaryDeliveryOf(
  call: Omit<CallContext, "signal">,
  control: CallControl,
  place: DeliveryPlace,
  forwarded: Metadata,
  payload: Uint8Array,
  signal: AbortSignal,
): UnaryDelivery {
  return {
    messageId: place.messageId,
    sessionId: place.sessionId,
    correlation: place.correlation,
    seq: place.seq,
    oneWay: place.oneWay,
    operation: call.operation,
    principal: call.principal,
    metadata: forwarded,
    traceparent: control.traceparent,
    tracestate: control.tracestate,
    deadlineMs: call.deadlineMs,
    signal,
    codec: call.codec,
    payload,
  };
}
