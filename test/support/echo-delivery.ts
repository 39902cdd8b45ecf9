import type { OperationContract } from "../../bridge/contracts/contract.js";
import type { UnaryDelivery } from "../../bridge/process/process-client.js";

/** The unary method of the test echo service that outbound-transport specs call. */
export const ECHO_UNARY_PATH = "/test.h2.v1.Echo/Unary";

/** The echo's unary method as a contract: bytes in, bytes out, no session. */
export const echoUnaryOperation: OperationContract = {
  path: ECHO_UNARY_PATH,
  service: "test.h2.v1.Echo",
  name: "Unary",
  requestType: "bytes",
  responseType: "bytes",
  requestStream: false,
  responseStream: false,
  startsSession: false,
  endsSession: false,
  oneWay: false,
  access: "exclusive",
  correlation: undefined,
};

/**
 * A sessionless unary delivery of the echo as the engine hands it to a process client:
 * anonymous, unnumbered, no metadata or deadline.
 */
export function echoUnaryDelivery(
  messageId: string,
  payload: Uint8Array,
  signal: AbortSignal = new AbortController().signal,
): UnaryDelivery {
  return {
    operation: echoUnaryOperation,
    messageId,
    sessionId: undefined,
    seq: 0,
    oneWay: false,
    principal: "anonymous",
    correlation: {},
    metadata: {},
    traceparent: undefined,
    tracestate: undefined,
    deadlineMs: undefined,
    signal,
    codec: "proto",
    payload,
  };
}
