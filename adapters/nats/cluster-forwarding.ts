import type { Msg, NatsConnection, Subscription } from "@nats-io/transport-node";
import type { UnaryCall, UnaryReply } from "../../bridge/call/call.js";
import type { ClusterBridge, Forwarder } from "../../bridge/cluster/cluster-bridge.js";
import type { ContractSet } from "../../bridge/contracts/contract.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { type Logger, silentLogger } from "../../bridge/logger.js";
import type { SessionRecord } from "../../bridge/store/records.js";
import {
  type CallHead,
  clusterSubject,
  forwardedCall,
  forwardFailure,
  frame,
  HEAD_ALLOWANCE_BYTES,
  type ReplyHead,
  respondFault,
  unframe,
} from "./cluster-frames.js";
import { forwardStream, isStreamRequest, serveForwardedStream } from "./cluster-streams.js";
import { faultOf } from "./nats-error.js";
import { metadataOf } from "./nats-headers.js";

/**
 * Calls between replicas (DESIGN §7): a replica that receives a call for a partition
 * another replica owns sends it to `<prefix>.cluster.<owner>` with NATS request-reply.
 * The message carries the call exactly as the engine takes it — operation, metadata
 * (sb-session-id, sb-seq, Idempotency-Key, traceparent and custom keys, S1/S7/S8/S15),
 * the resolved principal (S13), the codec and the remaining deadline — and the reply the
 * owner's answer: the payload and session facts, or the fault as the NATS adapter's
 * sb-status-bin (code, reason, message, details and metadata, S14), so the caller gets
 * what the owner said unchanged. The subject is internal: only replicas of the cluster
 * may publish there (NATS permissions), since it trusts the principal it is given.
 *
 * The wire form is in cluster-frames.ts, streams between replicas in cluster-streams.ts.
 */
export interface ClusterForwardingOptions {
  readonly connection: NatsConnection;
  readonly prefix: string;
  readonly replica: string;
  readonly contracts: ContractSet;
  /** Largest message accepted: the request payload plus its head. */
  readonly maxPayloadBytes: number;
  /** How long a forwarded call without a deadline may take before it is UNAVAILABLE. */
  readonly defaultTimeoutMs?: number;
  /** Forwarded calls served at once; more are answered UNAVAILABLE (bounded, DESIGN §7). */
  readonly maxInflight?: number;
  readonly logger?: Logger;
}

const DEFAULT_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_INFLIGHT = 4096;

/** The client side: sends a call to its owner and returns the owner's answer. */
export function createNatsForwarder(options: ClusterForwardingOptions): Forwarder {
  const { connection, prefix } = options;
  const maxBytes = options.maxPayloadBytes + HEAD_ALLOWANCE_BYTES;
  return {
    async unary(replica, call) {
      const now = Date.now();
      const remaining = call.deadlineMs === undefined ? undefined : call.deadlineMs - now;
      if (remaining !== undefined && remaining <= 0) {
        throw new BridgeError(
          Code.DEADLINE_EXCEEDED,
          Reason.DEADLINE_EXCEEDED,
          "deadline passed before forwarding",
        );
      }
      const head: CallHead = {
        operation: call.operation.path,
        metadata: call.metadata,
        principal: call.principal,
        codec: call.codec,
        timeoutMs: remaining,
      };
      let msg: Msg;
      try {
        msg = await connection.request(clusterSubject(prefix, replica), frame(head, call.payload), {
          timeout: remaining ?? options.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS,
        });
      } catch (error) {
        throw forwardFailure(replica, error, call.deadlineMs);
      }
      const fault = faultOf(metadataOf(msg.headers), {});
      if (fault !== undefined) throw fault;
      const { head: reply, payload } = unframe<ReplyHead>(msg.data, maxBytes);
      return {
        sessionId: reply.sessionId,
        messageId: reply.messageId,
        headers: reply.headers,
        trailers: reply.trailers,
        payload,
      };
    },

    stream(replica, call) {
      return forwardStream(options, replica, call, maxBytes);
    },

    async close(replica, sessionId, principal) {
      const head: CallHead = {
        close: sessionId,
        operation: "",
        metadata: {},
        principal,
        codec: "proto",
        timeoutMs: undefined,
      };
      let msg: Msg;
      try {
        msg = await connection.request(clusterSubject(prefix, replica), frame(head, new Uint8Array(0)), {
          timeout: options.defaultTimeoutMs ?? DEFAULT_TIMEOUT_MS,
        });
      } catch (error) {
        throw forwardFailure(replica, error, undefined);
      }
      const fault = faultOf(metadataOf(msg.headers), {});
      if (fault !== undefined) throw fault;
      return unframe<SessionRecord>(msg.data, maxBytes).head;
    },
  };
}

/** The server side: serves calls forwarded to this replica. stop() unsubscribes. */
export function serveForwardedCalls(
  bridge: ClusterBridge,
  options: ClusterForwardingOptions,
): { stop(): Promise<void> } {
  const logger = options.logger ?? silentLogger;
  const maxBytes = options.maxPayloadBytes + HEAD_ALLOWANCE_BYTES;
  const maxInflight = options.maxInflight ?? DEFAULT_MAX_INFLIGHT;
  const controller = new AbortController();
  let inflight = 0;
  const sub: Subscription = options.connection.subscribe(clusterSubject(options.prefix, options.replica), {
    callback: (error, msg) => {
      if (error !== null) {
        logger.warn({ err: error }, "forwarded-call subscription failed");
        return;
      }
      if (inflight >= maxInflight) {
        respondFault(msg, new BridgeError(Code.UNAVAILABLE, Reason.PARTITION_MOVING, "replica busy; retry"));
        return;
      }
      inflight++;
      if (isStreamRequest(msg)) {
        serveForwardedStream(bridge, options, msg, maxBytes, controller.signal)
          .catch((failure: unknown) => logger.warn({ err: failure }, "cannot answer a forwarded stream"))
          .finally(() => {
            inflight--;
          });
        return;
      }
      serveOne(bridge, options.contracts, msg, maxBytes, controller.signal)
        .then(
          (reply) => (isRecord(reply) ? msg.respond(frame(reply, new Uint8Array(0))) : respondOk(msg, reply)),
          (failure: unknown) => respondFault(msg, BridgeError.from(failure)),
        )
        .catch((failure: unknown) => logger.warn({ err: failure }, "cannot answer a forwarded call"))
        .finally(() => {
          inflight--;
        });
    },
  });
  return {
    async stop() {
      controller.abort();
      sub.unsubscribe();
    },
  };
}

async function serveOne(
  bridge: ClusterBridge,
  contracts: ContractSet,
  msg: Msg,
  maxBytes: number,
  signal: AbortSignal,
): Promise<UnaryReply | SessionRecord> {
  const { head, payload } = unframe<CallHead>(msg.data, maxBytes);
  if (typeof head.close === "string") return bridge.serveForwardedClose(head.close, head.principal);
  const call: UnaryCall = { ...forwardedCall(contracts, head, signal), payload };
  return bridge.serveForwarded(call);
}

function isRecord(reply: UnaryReply | SessionRecord): reply is SessionRecord {
  return "state" in reply;
}

function respondOk(msg: Msg, reply: UnaryReply): void {
  const head: ReplyHead = {
    sessionId: reply.sessionId,
    messageId: reply.messageId,
    headers: reply.headers,
    trailers: reply.trailers,
  };
  msg.respond(frame(head, reply.payload));
}
