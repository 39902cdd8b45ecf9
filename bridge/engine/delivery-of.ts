import type { CallContext } from "../call/call.js";
import type { CallControl } from "../call/control.js";
import { forwardable, type Metadata } from "../call/metadata.js";
import type { Delivery } from "../process/process-client.js";

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
