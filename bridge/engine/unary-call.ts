import type { CallContext, UnaryCall, UnaryReply } from "../call/call.js";
import type { CallControl } from "../call/control.js";
import { newId } from "../call/ids.js";
import { flattenMetadata, forwardable, type Metadata } from "../call/metadata.js";
import type { ServiceContract } from "../contracts/contract.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { ProcessReply } from "../process/process-client.js";
import type { IdempotencyRecord } from "../store/records.js";
import { unaryDeliveryOf } from "./delivery-of.js";
import { type EngineContext, NEVER_ABORTED, processFor } from "./engine-context.js";
import { EnvelopeKind, encodeEnvelope, faultOf, makeEnvelope } from "./envelope-codec.js";
import { IdempotencyGuard } from "./idempotency-guard.js";
import type { LiveSession } from "./live-session.js";
import { replayEndedSeq, replayIdempotent, replayMessage, replaySeq } from "./recorded-replies.js";
import { outcomeNotRecorded } from "./replay.js";
import { SessionCall } from "./session-call.js";
import {
  abortedBySessionEnd,
  callerFault,
  deadlineExceeded,
  waitAborted,
  withSession,
} from "./session-errors.js";
import {
  endedError,
  fullCorrelation,
  type RoutingValues,
  routeCall,
  routingValues,
} from "./session-router.js";

const EMPTY = new Uint8Array(0);

/**
 * A unary call (one-way included) through its session: admission (S8 idempotency, S1–S5
 * routing, S7 numbering) runs in the call's admission lane; acceptance journals the
 * request and takes its turn in the same step (S6, S9); the run delivers it in its turn
 * and records the outcome the process gave.
 */
export async function unaryInSession(
  ctx: EngineContext,
  call: UnaryCall,
  control: CallControl,
  service: ServiceContract,
): Promise<UnaryReply> {
  const values = routingValues(call.operation, control, call.payload, ctx.defaults.maxCorrelationValueBytes);
  const admit = (): Promise<{ reply: Promise<UnaryReply> }> => admit_(ctx, call, control, service, values);
  const sessionLane = laneOf(service, control, values);
  // S8: calls with the same key are admitted one after the other, whatever session they
  // would reach, so a concurrent twin finds the first one in flight and waits for it.
  const keyLane =
    control.idempotencyKey === undefined ? undefined : `idem\n${call.principal}\n${control.idempotencyKey}`;
  const inSessionLane = (): Promise<{ reply: Promise<UnaryReply> }> =>
    sessionLane === undefined ? admit() : ctx.lanes.run(sessionLane, admit);
  const admitted =
    keyLane === undefined ? await inSessionLane() : await ctx.lanes.run(keyLane, inSessionLane);
  return ctx.track(admitted.reply);
}

async function admit_(
  ctx: EngineContext,
  call: UnaryCall,
  control: CallControl,
  service: ServiceContract,
  values: RoutingValues,
): Promise<{ reply: Promise<UnaryReply> }> {
  const op = call.operation;
  let hash: string | undefined;
  if (control.idempotencyKey !== undefined) {
    // S8 comes first: a retried starter must get its recorded outcome, not a new session.
    hash = IdempotencyGuard.hash(op.path, call.payload);
    const check = await ctx.idempotency.check(call.principal, control.idempotencyKey, hash);
    if (check.type === "replay") {
      const { sessionId, messageId, outcome } = check.record;
      return { reply: replayIdempotent(ctx, sessionId, messageId, outcome) };
    }
    if (check.type === "interrupted") {
      // Accepted before a restart; recovery re-queued it and recorded its outcome (S10).
      const { sessionId, messageId } = check.record;
      return {
        reply:
          sessionId === undefined
            ? Promise.reject(outcomeNotRecorded(messageId))
            : replayMessage(ctx, sessionId, messageId),
      };
    }
  }
  const route = await routeCall(ctx, call, control, service, values);
  if (route.type === "ended") {
    // A retried number of an ended session still gets its recorded outcome (S7).
    if (control.seq !== undefined && control.seq < route.record.nextSeq) {
      return { reply: replayEndedSeq(ctx, route.record, control.seq) };
    }
    throw endedError(route.record);
  }
  const { session, started } = route;
  if (control.seq !== undefined) {
    // S7: numbered messages count 1, 2, 3, …; the number is taken at arrival.
    if (control.seq < session.nextSeq) return { reply: replaySeq(ctx, session, control.seq) };
    if (control.seq > session.nextSeq) {
      throw new BridgeError(
        Code.FAILED_PRECONDITION,
        Reason.OUT_OF_SEQUENCE,
        `sb-seq ${control.seq} is out of sequence: session ${session.id} expects ${session.nextSeq}`,
        { metadata: { expected_seq: String(session.nextSeq), session_id: session.id } },
      );
    }
    session.nextSeq += 1;
  }
  return { reply: accept(ctx, call, control, session, started, hash) };
}

/**
 * Accepts a call into its session: journals it with the delivery outbox entry that makes
 * it survive a crash (S9, S10), and takes its place in the session's turn order (S6), in
 * one synchronous step, so that arrival order is delivery order.
 */
function accept(
  ctx: EngineContext,
  call: UnaryCall,
  control: CallControl,
  session: LiveSession,
  started: import("../store/records.js").JournalRecord | undefined,
  hash: string | undefined,
): Promise<UnaryReply> {
  const op = call.operation;
  const now = ctx.clock.now();
  const messageId = newId();
  const seq = control.seq ?? 0;
  const forwarded = forwardable(call.metadata);
  const request = ctx.journal.entry(session, {
    kind: op.oneWay ? EnvelopeKind.ENVELOPE_KIND_ONE_WAY : EnvelopeKind.ENVELOPE_KIND_REQUEST,
    messageId,
    operation: op.path,
    principal: call.principal,
    timeMs: now,
    payload: call.payload,
    codec: call.codec,
    seq,
    correlation: session.correlation,
    metadata: flattenMetadata(forwarded),
    deadlineMs: call.deadlineMs,
    traceparent: control.traceparent,
    tracestate: control.tracestate,
    idempotencyKey: control.idempotencyKey,
  });
  const idempotency: IdempotencyRecord | undefined =
    control.idempotencyKey === undefined || hash === undefined
      ? undefined
      : {
          principal: call.principal,
          key: control.idempotencyKey,
          requestHash: hash,
          operation: op.path,
          sessionId: session.id,
          messageId,
          createdAtMs: now,
          // A one-way caller's outcome is its acknowledgement, known at acceptance.
          outcome: op.oneWay ? ackEnvelope(session, messageId, op.path, now) : undefined,
        };
  const accepted = ctx.journal.commit(session, {
    entries: started === undefined ? [request] : [started, request],
    ...(idempotency === undefined ? {} : { idempotency: [idempotency] }),
    // Every accepted request waits in the outbox until its outcome is recorded, so a
    // restart re-queues what was never answered, in journal order (S10).
    outboxAdd: [{ sessionId: session.id, messageId, index: request.index }],
  });
  if (control.seq !== undefined) {
    // S7: a number whose message was not recorded is free again, so a retry is not
    // mistaken for a duplicate (later numbers failed with it: their entries would gap).
    const seqTaken = control.seq;
    accepted.catch(() => {
      session.nextSeq = Math.min(session.nextSeq, seqTaken);
    });
  }
  const sessionCall = new SessionCall(ctx, session, {
    operation: op.path,
    access: op.access,
    messageId,
    accepted,
    pending: true,
    // A one-way message is acknowledged on acceptance: its caller no longer waits.
    ...(op.oneWay ? {} : { wait: { caller: call, deadlineMs: call.deadlineMs } }),
  });

  let reply: Promise<UnaryReply>;
  if (op.oneWay) {
    ctx.oneWay.dispatch({
      call: sessionCall,
      process: processFor(ctx, op),
      // Each attempt sets its own deadline and signal (one-way-dispatcher.ts): the caller's
      // signal is not read, so an adapter that builds it on first read never does.
      delivery: unaryDeliveryOf(
        call,
        control,
        placeOf(session, messageId, seq, true),
        forwarded,
        call.payload,
        NEVER_ABORTED,
      ),
    });
    reply = accepted.then(
      () => ({ payload: EMPTY, sessionId: session.id, messageId, headers: {}, trailers: {} }),
      (error: unknown) => {
        throw withSession(
          BridgeError.from(error, Code.UNAVAILABLE, Reason.STORE_FAILURE),
          session.id,
          messageId,
        );
      },
    );
  } else {
    reply = runUnary(ctx, sessionCall, {
      call,
      control,
      payload: call.payload,
      seq,
      forwarded,
      idempotency,
      caller: call,
    });
  }
  trackCompletion(ctx, session, control.seq, idempotency, reply);
  return reply;
}

export interface UnaryRun {
  /** The call as the caller made it (or as recovery rebuilt it from the journal). */
  readonly call: Omit<UnaryCall, "payload" | "signal">;
  readonly control: CallControl;
  readonly payload: Uint8Array;
  readonly seq: number;
  readonly forwarded: Metadata;
  readonly idempotency: IdempotencyRecord | undefined;
  /**
   * The caller, asked whether it left before delivery; undefined when nobody waits
   * (recovery). Its `signal` is read only when it did leave.
   */
  readonly caller: Pick<CallContext, "signal" | "cancelled"> | undefined;
}

/**
 * Delivers an accepted request-response call in its turn and records the outcome the
 * process really gave (S9): a call whose caller left before its turn is never delivered;
 * one already delivered is not cancelled with its caller, so the journal and the process
 * never disagree.
 */
export async function runUnary(
  ctx: EngineContext,
  sessionCall: SessionCall,
  run: UnaryRun,
): Promise<UnaryReply> {
  const { session } = sessionCall;
  const op = run.call.operation;
  let reply: ProcessReply | undefined;
  let failure: BridgeError | undefined;
  try {
    await sessionCall.ready();
    if (!session.live) throw abortedBySessionEnd(session.id);
    const caller = run.caller;
    if (caller !== undefined && (caller.cancelled ?? caller.signal.aborted)) {
      throw waitAborted(caller.signal.reason, "before delivery");
    }
    if (run.call.deadlineMs !== undefined && run.call.deadlineMs <= Date.now()) {
      throw deadlineExceeded("while the call waited for its turn in the session");
    }
    const place = placeOf(session, sessionCall.messageId, run.seq, false);
    reply = await processFor(ctx, op).unary(
      unaryDeliveryOf(run.call, run.control, place, run.forwarded, run.payload, NEVER_ABORTED),
    );
  } catch (error) {
    failure = waitAborted(error, "while the call waited for its turn in the session");
  }

  const headers = reply === undefined ? (failure?.headers ?? {}) : forwardable(reply.headers);
  const trailers = reply === undefined ? (failure?.trailers ?? {}) : forwardable(reply.trailers);
  const recorded = sessionCall.finish(
    failure === undefined && reply !== undefined
      ? {
          kind: EnvelopeKind.ENVELOPE_KIND_RESPONSE,
          payload: reply.payload,
          codec: run.call.codec,
          metadata: replyMetadata(headers, trailers),
        }
      : {
          kind: EnvelopeKind.ENVELOPE_KIND_FAULT,
          fault: faultOf(failure ?? outcomeNotRecorded(sessionCall.messageId)),
          metadata: replyMetadata(headers, trailers),
        },
    {
      endsSession: failure === undefined && op.endsSession,
      ...(run.idempotency === undefined ? {} : { idempotency: run.idempotency }),
    },
  );
  try {
    // S9: the outcome is durable before the caller hears it.
    await recorded;
  } catch (error) {
    failure ??= BridgeError.from(error, Code.UNAVAILABLE, Reason.STORE_FAILURE);
  }
  if (failure !== undefined || reply === undefined) {
    const error = failure ?? outcomeNotRecorded(sessionCall.messageId);
    throw callerFault(error, session.id, sessionCall.messageId);
  }
  return {
    payload: reply.payload,
    sessionId: session.id,
    messageId: sessionCall.messageId,
    headers,
    trailers,
  };
}

/**
 * The reply's headers and trailers as one flat record, trailers winning, as
 * `{ ...flattenMetadata(headers), ...flattenMetadata(trailers) }` gave; built on one fresh
 * object because on V8 11 (Node 20) fields added to a spread copy give it a hidden class of
 * its own, freed only by a full collection (profile-bridged-memory.md, "Hidden classes
 * made per call").
 */
function replyMetadata(headers: Metadata, trailers: Metadata): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of Object.keys(headers)) out[key] = (headers[key] as readonly string[]).join(", ");
  for (const key of Object.keys(trailers)) out[key] = (trailers[key] as readonly string[]).join(", ");
  return out;
}

export function placeOf(session: LiveSession, messageId: string, seq: number, oneWay: boolean) {
  return { messageId, sessionId: session.id, correlation: session.correlation, seq, oneWay };
}

/** Lets S7 duplicates and S8 retries that arrive while the call runs wait for it. */
export function trackCompletion(
  ctx: EngineContext,
  session: LiveSession,
  seq: number | undefined,
  idempotency: IdempotencyRecord | undefined,
  reply: Promise<unknown>,
): void {
  // Nothing can wait for a call that has neither a number nor a key.
  if ((seq === undefined || seq <= 0) && idempotency === undefined) return;
  const done = reply.then(
    () => undefined,
    () => undefined,
  );
  if (seq !== undefined && seq > 0) session.trackSeq(seq, done);
  if (idempotency !== undefined) {
    ctx.idempotency.track(idempotency.principal, idempotency.key, {
      hash: idempotency.requestHash,
      sessionId: session.id,
      messageId: idempotency.messageId,
      done,
    });
  }
}

/**
 * The admission lane of a call: calls that may reach the same session share one. Calls
 * that can only start a fresh, uncorrelated session need none.
 */
export function laneOf(
  service: ServiceContract,
  control: CallControl,
  values: RoutingValues,
): string | undefined {
  if (control.sessionId !== undefined) return `id\n${control.sessionId}`;
  const correlation = fullCorrelation(values);
  if (correlation !== undefined) return `key\n${service.name}\n${correlation.key}`;
  if (service.execution !== "concurrent") return `service\n${service.name}`;
  return undefined;
}

function ackEnvelope(session: LiveSession, messageId: string, operation: string, now: number): Uint8Array {
  return encodeEnvelope(
    makeEnvelope({
      kind: EnvelopeKind.ENVELOPE_KIND_ACK,
      messageId,
      inReplyTo: messageId,
      sessionId: session.id,
      operation,
      principal: session.principal,
      timeMs: now,
    }),
  );
}
