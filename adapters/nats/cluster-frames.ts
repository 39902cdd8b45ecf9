import { errors, type Msg } from "@nats-io/transport-node";
import type { UnaryCall } from "../../bridge/call/call.js";
import type { Metadata } from "../../bridge/call/metadata.js";
import type { ContractSet } from "../../bridge/contracts/contract.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { faultHeaders } from "./nats-error.js";

/**
 * The wire between replicas (cluster-forwarding.ts): the subject, the call and reply heads,
 * their framing — a 4-byte big-endian length, a JSON head of that length, then the payload
 * bytes — and what a failed hop means to the caller.
 */

export interface CallHead {
  /** Set for a forwarded SessionService Close: the session to close (S12). */
  readonly close?: string;
  readonly operation: string;
  readonly metadata: Metadata;
  readonly principal: string;
  readonly codec: "proto" | "json";
  readonly timeoutMs: number | undefined;
  /** A server-streaming call: the answer comes in the stream framing of nats-stream.ts. */
  readonly stream?: true;
}

export interface ReplyHead {
  readonly sessionId: string | undefined;
  readonly messageId: string | undefined;
  readonly headers: Metadata;
  readonly trailers: Metadata;
}

/** Room for the head beside the payload: metadata is bounded by the adapters that took it. */
export const HEAD_ALLOWANCE_BYTES = 256 * 1024;

export function clusterSubject(prefix: string, replica: string): string {
  return `${prefix}.cluster.${replica}`;
}

/**
 * The caller's facts as the forwarding replica sent them: the operation resolved here, the
 * remaining deadline made absolute again on this replica's clock (S15).
 */
export function forwardedCall(
  contracts: ContractSet,
  head: CallHead,
  signal: AbortSignal,
): Omit<UnaryCall, "payload"> {
  const operation = contracts.operations.get(head.operation);
  if (operation === undefined) {
    throw new BridgeError(
      Code.UNIMPLEMENTED,
      Reason.UNKNOWN_OPERATION,
      `${head.operation} is not served here`,
    );
  }
  return {
    operation,
    metadata: head.metadata,
    deadlineMs: head.timeoutMs === undefined ? undefined : Date.now() + head.timeoutMs,
    signal,
    principal: head.principal,
    codec: head.codec,
  };
}

export function respondFault(msg: Msg, error: BridgeError): void {
  msg.respond(new Uint8Array(0), { headers: faultHeaders(error) });
}

export function frame(head: object, payload: Uint8Array): Uint8Array {
  const json = Buffer.from(JSON.stringify(head), "utf8");
  const out = Buffer.allocUnsafe(4 + json.length + payload.byteLength);
  out.writeUInt32BE(json.length, 0);
  json.copy(out, 4);
  out.set(payload, 4 + json.length);
  return out;
}

/** Reads a framed message; lengths are checked before anything is copied. */
export function unframe<T>(data: Uint8Array, maxBytes: number): { head: T; payload: Uint8Array } {
  if (data.byteLength < 4 || data.byteLength > maxBytes) throw malformed(`${data.byteLength} bytes`);
  const view = Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  const headLength = view.readUInt32BE(0);
  if (headLength > data.byteLength - 4) throw malformed("head longer than the message");
  let head: T;
  try {
    head = JSON.parse(view.toString("utf8", 4, 4 + headLength)) as T;
  } catch {
    throw malformed("head is not JSON");
  }
  return { head, payload: data.subarray(4 + headLength) };
}

export function malformed(why: string): BridgeError {
  return new BridgeError(Code.INTERNAL, Reason.INTERNAL, `malformed call between replicas: ${why}`);
}

/** No responder: the owner is gone (UNAVAILABLE, retry); no answer in time: the deadline, or UNAVAILABLE. */
export function forwardFailure(replica: string, error: unknown, deadlineMs: number | undefined): BridgeError {
  if (
    error instanceof errors.NoRespondersError ||
    (error instanceof Error && /no responders/i.test(error.message))
  ) {
    return new BridgeError(
      Code.UNAVAILABLE,
      Reason.PARTITION_MOVING,
      `replica ${replica}, the owner of the session's partition, is not reachable; retry`,
    );
  }
  if (deadlineMs !== undefined && Date.now() >= deadlineMs - 5) {
    return new BridgeError(
      Code.DEADLINE_EXCEEDED,
      Reason.DEADLINE_EXCEEDED,
      `replica ${replica} did not answer in time`,
    );
  }
  return new BridgeError(
    Code.UNAVAILABLE,
    Reason.PARTITION_MOVING,
    `replica ${replica} did not answer: ${error instanceof Error ? error.message : String(error)}; retry`,
  );
}
