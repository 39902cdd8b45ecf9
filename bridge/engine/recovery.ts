import type { CallControl } from "../call/control.js";
import type { Metadata } from "../call/metadata.js";
import type { OutboxRecord, SessionRecord } from "../store/records.js";
import { deliveryOf } from "./delivery-of.js";
import { type EngineContext, processFor } from "./engine-context.js";
import { decodeEnvelope, type Envelope, EnvelopeKind } from "./envelope-codec.js";
import { SessionCall } from "./session-call.js";
import { placeOf, runUnary, trackCompletion } from "./unary-call.js";

/**
 * Start-up after a stop or a crash (S10): live sessions come back, and every request that
 * was accepted but never answered — one-way or request-response — is queued again in its
 * session, in journal order, with its original message id, before anything new of that
 * session can arrive (the listeners open only after this). A client that retries such a
 * request (same sb-seq or Idempotency-Key) joins the pending delivery instead of
 * starting another.
 */
export async function recoverSessions(
  ctx: EngineContext,
  sessions: readonly SessionRecord[],
  outbox: readonly OutboxRecord[],
): Promise<{ restored: number; requeued: number }> {
  let restored = 0;
  for (const record of sessions) {
    const service = ctx.contracts.services.get(record.service);
    if (service === undefined) {
      ctx.logger.warn(
        { session: record.id, service: record.service },
        "session of a service no longer configured",
      );
      continue;
    }
    ctx.lifecycle.restore(record, service);
    restored += 1;
  }
  let requeued = 0;
  for (const item of outbox) {
    if (await requeue(ctx, item)) requeued += 1;
  }
  return { restored, requeued };
}

async function requeue(ctx: EngineContext, item: OutboxRecord): Promise<boolean> {
  const { sessionId, messageId } = item;
  const exchange = await ctx.store.findByMessageId(sessionId, messageId);
  const session = ctx.registry.get(sessionId);
  const envelope = exchange === undefined ? undefined : decodeEnvelope(exchange.request.envelope);
  const op = envelope === undefined ? undefined : ctx.contracts.operations.get(envelope.operation);
  const answered =
    exchange !== undefined &&
    exchange.outcomes.length > 0 &&
    envelope?.kind !== EnvelopeKind.ENVELOPE_KIND_ONE_WAY;
  if (session === undefined || envelope === undefined || op === undefined || answered) {
    // The session ended, the entry is gone, or the operation left the configuration:
    // nothing can be delivered any more.
    await ctx.store.commit({ outboxRemove: [{ sessionId, messageId }] });
    return false;
  }
  const metadata = metadataOf(envelope);
  const control: CallControl = {
    sessionId,
    seq: envelope.seq > 0 ? envelope.seq : undefined,
    idempotencyKey: envelope.idempotencyKey === "" ? undefined : envelope.idempotencyKey,
    traceparent: envelope.traceparent,
    tracestate: envelope.tracestate === "" ? undefined : envelope.tracestate,
  };
  const deadlineMs = envelope.deadline === undefined ? undefined : timestampMs(envelope.deadline);
  const call = {
    operation: op,
    metadata,
    deadlineMs,
    principal: envelope.principal,
    codec: envelope.codec === "json" ? ("json" as const) : ("proto" as const),
  };
  const sessionCall = new SessionCall(ctx, session, {
    operation: op.path,
    access: op.access,
    messageId,
    accepted: Promise.resolve(),
    pending: true,
  });
  if (envelope.kind === EnvelopeKind.ENVELOPE_KIND_ONE_WAY) {
    ctx.oneWay.dispatch({
      call: sessionCall,
      process: processFor(ctx, op),
      delivery: {
        ...deliveryOf(
          { ...call, signal: new AbortController().signal },
          control,
          placeOf(session, messageId, envelope.seq, true),
          metadata,
        ),
        payload: envelope.payload,
      },
    });
    return true;
  }
  const idempotency =
    control.idempotencyKey === undefined
      ? undefined
      : await ctx.store.getIdempotency(envelope.principal, control.idempotencyKey);
  const reply = runUnary(ctx, sessionCall, {
    call,
    control,
    payload: envelope.payload,
    seq: envelope.seq,
    forwarded: metadata,
    idempotency:
      idempotency?.messageId === messageId && idempotency.outcome === undefined ? idempotency : undefined,
    caller: undefined,
  });
  trackCompletion(
    ctx,
    session,
    control.seq,
    idempotency?.messageId === messageId ? idempotency : undefined,
    reply,
  );
  // Nobody waits for this reply: the outcome is in the journal for retries to find.
  void ctx.track(reply).catch(() => {});
  return true;
}

function metadataOf(envelope: Envelope): Metadata {
  const out: Record<string, readonly string[]> = {};
  for (const [key, value] of Object.entries(envelope.metadata)) out[key] = [value];
  return out;
}

function timestampMs(t: { seconds: number; nanos: number }): number {
  return t.seconds * 1000 + Math.floor(t.nanos / 1e6);
}
