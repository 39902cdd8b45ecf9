import type { StreamCall, StreamEvent } from "../call/call.js";
import type { CallControl } from "../call/control.js";
import { newId } from "../call/ids.js";
import { flattenMetadata, forwardable, type Metadata } from "../call/metadata.js";
import type { ServiceContract } from "../contracts/contract.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { JournalRecord } from "../store/records.js";
import { checkPayloadSize } from "./call-limits.js";
import { deliveryOf, sessionlessPlace } from "./delivery-of.js";
import { type EngineContext, processFor } from "./engine-context.js";
import { EnvelopeKind, faultOf } from "./envelope-codec.js";
import type { LiveSession } from "./live-session.js";
import { SessionCall } from "./session-call.js";
import { abortedBySessionEnd, callerFault, deadlineExceeded, waitAborted } from "./session-errors.js";
import { endedError, routeCall, routingValues } from "./session-router.js";
import { laneOf, placeOf } from "./unary-call.js";

/**
 * Streaming calls through a session. The first request message decides the session (its
 * correlation values, S1–S5); the whole stream then holds one turn of the session (S6).
 * Every request message is journaled before it is forwarded (S9); response messages are
 * journaled as they pass and the final status is sent only once all of them are durable.
 */
export async function* runStream(
  ctx: EngineContext,
  call: StreamCall,
  control: CallControl,
  service: ServiceContract,
): AsyncGenerator<StreamEvent> {
  const op = call.operation;
  if (control.seq !== undefined || control.idempotencyKey !== undefined) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.UNSUPPORTED_ON_STREAM,
      `${op.path} is a streaming call: sb-seq and Idempotency-Key apply to unary and one-way calls`,
    );
  }
  if (!service.sessionful) {
    yield* passthrough(ctx, call, control);
    return;
  }
  if (call.deadlineMs !== undefined && call.deadlineMs <= Date.now()) {
    throw deadlineExceeded("before the bridge accepted the call");
  }
  const maxPayloadBytes = ctx.defaults.maxPayloadBytes;
  const requests = call.messages[Symbol.asyncIterator]();
  const first = await requests.next();
  if (first.done === true && (op.correlation !== undefined || !op.requestStream)) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.MALFORMED_MESSAGE,
      `${op.path}: the call sent no request message`,
    );
  }
  const firstPayload = first.done === true ? undefined : first.value;
  if (firstPayload !== undefined) checkPayloadSize(firstPayload, maxPayloadBytes);
  const values = routingValues(op, control, firstPayload, ctx.defaults.maxCorrelationValueBytes);

  const lane = laneOf(service, control, values);
  const admit = async () => {
    const route = await routeCall(ctx, call, control, service, values);
    if (route.type === "ended") throw endedError(route.record);
    const { session, started } = route;
    const messageId = newId();
    const entries: JournalRecord[] = started === undefined ? [] : [started];
    if (firstPayload !== undefined) {
      entries.push(requestEntry(ctx, call, control, session, messageId, messageId, firstPayload));
    }
    const accepted = ctx.journal.commit(session, { entries });
    const sessionCall = new SessionCall(ctx, session, {
      operation: op.path,
      access: op.access,
      messageId,
      accepted,
      pending: false,
      wait: { caller: call, deadlineMs: call.deadlineMs },
    });
    return sessionCall;
  };
  const sessionCall = lane === undefined ? await admit() : await ctx.lanes.run(lane, admit);
  const { session, messageId } = sessionCall;

  let finished = false;
  let settle: () => void = () => {};
  void ctx.track(
    new Promise<void>((resolve) => {
      settle = resolve;
    }),
  );
  // Every commit of the stream is observed here, so none can reject unobserved, and the
  // final status waits for all of them (S9). A store resolves commits in the order they
  // were made, so waiting for the last one waits for all, and nothing accumulates.
  let commitError: unknown;
  let lastCommit: Promise<void> = Promise.resolve();
  const observe = (commit: Promise<void>): void => {
    lastCommit = commit.catch((error: unknown) => {
      commitError ??= error;
    });
  };
  let failure: BridgeError | undefined;
  let trailers: Metadata = {};
  let responses = 0;
  try {
    yield { type: "session", sessionId: session.id, messageId };
    try {
      await sessionCall.ready();
      if (!session.live) throw abortedBySessionEnd(session.id);
      if (call.signal.aborted) throw waitAborted(call.signal.reason, "before delivery");
      if (call.deadlineMs !== undefined && call.deadlineMs <= Date.now()) {
        throw deadlineExceeded("while the call waited for its turn in the session");
      }
      const outbound = journaledRequests(
        ctx,
        call,
        control,
        session,
        messageId,
        firstPayload,
        requests,
        observe,
      );
      for await (const event of processFor(ctx, op).stream({
        ...deliveryOf(call, control, placeOf(session, messageId, 0, false)),
        messages: outbound,
      })) {
        if (event.type === "headers") {
          yield { type: "headers", metadata: forwardable(event.metadata) };
        } else if (event.type === "message") {
          responses += 1;
          const entry = ctx.journal.entry(session, {
            kind: EnvelopeKind.ENVELOPE_KIND_RESPONSE,
            messageId: newId(),
            inReplyTo: messageId,
            operation: op.path,
            principal: session.principal,
            timeMs: ctx.clock.now(),
            payload: event.payload,
            codec: call.codec,
          });
          observe(ctx.journal.commit(session, { entries: [entry] }));
          yield { type: "message", payload: event.payload };
        } else {
          trailers = forwardable(event.metadata);
        }
      }
    } catch (error) {
      failure = waitAborted(error, "while the stream waited for its turn in the session");
      trailers = forwardable(failure.trailers);
    }

    finished = true;
    observe(
      sessionCall.finish(
        {
          kind: failure === undefined ? EnvelopeKind.ENVELOPE_KIND_ACK : EnvelopeKind.ENVELOPE_KIND_FAULT,
          metadata: { responses: String(responses), ...flattenMetadata(trailers) },
          ...(failure === undefined ? {} : { fault: faultOf(failure) }),
        },
        { endsSession: failure === undefined && op.endsSession },
      ),
    );
    // S9: every entry of the stream is durable before the final status goes out.
    await lastCommit;
    if (commitError !== undefined) {
      failure ??= BridgeError.from(commitError, Code.UNAVAILABLE, Reason.STORE_FAILURE);
    }
    if (failure !== undefined) {
      throw callerFault(failure, session.id, messageId, trailers);
    }
    yield { type: "trailers", metadata: trailers };
  } finally {
    // Reached early when the caller stops reading: record that the call was cancelled
    // (the journal shows every request's outcome, S9) and give the turn back.
    if (!finished) {
      sessionCall
        .finish({
          kind: EnvelopeKind.ENVELOPE_KIND_FAULT,
          fault: faultOf(
            new BridgeError(Code.CANCELLED, Reason.CANCELLED, "the caller went away before the stream ended"),
          ),
        })
        .catch((error: unknown) => {
          ctx.logger.error({ session: session.id, err: error }, "could not record a cancelled stream");
        });
    }
    settle();
  }
}

/** Request messages after the first, each journaled and durable before it is forwarded. */
async function* journaledRequests(
  ctx: EngineContext,
  call: StreamCall,
  control: CallControl,
  session: LiveSession,
  streamId: string,
  first: Uint8Array | undefined,
  rest: AsyncIterator<Uint8Array>,
  observe: (commit: Promise<void>) => void,
): AsyncGenerator<Uint8Array> {
  if (first === undefined) return;
  yield first;
  for (;;) {
    const next = await rest.next();
    if (next.done === true) return;
    checkPayloadSize(next.value, ctx.defaults.maxPayloadBytes);
    const commit = ctx.journal.commit(session, {
      entries: [requestEntry(ctx, call, control, session, newId(), streamId, next.value)],
    });
    observe(commit);
    await commit;
    yield next.value;
  }
}

function requestEntry(
  ctx: EngineContext,
  call: StreamCall,
  control: CallControl,
  session: LiveSession,
  messageId: string,
  streamId: string,
  payload: Uint8Array,
): JournalRecord {
  return ctx.journal.entry(session, {
    kind: EnvelopeKind.ENVELOPE_KIND_REQUEST,
    messageId,
    operation: call.operation.path,
    principal: call.principal,
    timeMs: ctx.clock.now(),
    payload,
    codec: call.codec,
    correlation: session.correlation,
    // Later messages of a stream name the stream's first message.
    metadata:
      messageId === streamId
        ? flattenMetadata(forwardable(call.metadata))
        : { "sb-stream-message-id": streamId },
    deadlineMs: call.deadlineMs,
    traceparent: control.traceparent,
    tracestate: control.tracestate,
  });
}

async function* passthrough(
  ctx: EngineContext,
  call: StreamCall,
  control: CallControl,
): AsyncGenerator<StreamEvent> {
  const messageId = newId();
  yield { type: "session", sessionId: undefined, messageId };
  const events = processFor(ctx, call.operation).stream({
    ...deliveryOf(call, control, sessionlessPlace(messageId)),
    messages: call.messages,
  });
  for await (const event of events) {
    if (event.type === "message") yield event;
    else yield { type: event.type, metadata: forwardable(event.metadata) };
  }
}
