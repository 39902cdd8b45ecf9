import { flattenMetadata } from "../../bridge/call/metadata.js";
import {
  decodeEnvelope,
  EnvelopeKind,
  encodeEnvelope,
  errorOf,
  makeEnvelope,
} from "../../bridge/engine/envelope-codec.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { ProcessReply, UnaryDelivery } from "../../bridge/process/process-client.js";

/**
 * Envelope-native processes (sessionbridge.v1.Process): the delivery travels as one
 * Envelope carrying every session fact, instead of as the contract's own call.
 */
export function toEnvelopeBytes(delivery: UnaryDelivery): Uint8Array {
  return encodeEnvelope(
    makeEnvelope({
      kind: delivery.oneWay ? EnvelopeKind.ENVELOPE_KIND_ONE_WAY : EnvelopeKind.ENVELOPE_KIND_REQUEST,
      messageId: delivery.messageId,
      sessionId: delivery.sessionId ?? "",
      operation: delivery.operation.path,
      principal: delivery.principal,
      timeMs: Date.now(),
      payload: delivery.payload,
      codec: delivery.codec,
      seq: delivery.seq,
      correlation: delivery.correlation,
      metadata: flattenMetadata(delivery.metadata),
      deadlineMs: delivery.deadlineMs,
      traceparent: delivery.traceparent,
      tracestate: delivery.tracestate,
    }),
  );
}

/** The process's answer Envelope as a reply: RESPONSE or ACK succeed, FAULT fails (S14). */
export function envelopeReply(reply: ProcessReply): ProcessReply {
  let envelope: ReturnType<typeof decodeEnvelope>;
  try {
    envelope = decodeEnvelope(reply.payload);
  } catch (error) {
    throw new BridgeError(
      Code.INTERNAL,
      Reason.PROCESS_FAULT,
      "the process answered with an undecodable Envelope",
      {
        cause: error,
      },
    );
  }
  switch (envelope.kind) {
    case EnvelopeKind.ENVELOPE_KIND_RESPONSE:
    case EnvelopeKind.ENVELOPE_KIND_ACK:
      return { payload: envelope.payload, headers: reply.headers, trailers: reply.trailers };
    case EnvelopeKind.ENVELOPE_KIND_FAULT:
      if (envelope.fault !== undefined) throw errorOf(envelope.fault);
      break;
    default:
      break;
  }
  throw new BridgeError(
    Code.INTERNAL,
    Reason.PROCESS_FAULT,
    `the process answered with an Envelope of kind ${envelope.kind}; expected RESPONSE, ACK or FAULT`,
  );
}
