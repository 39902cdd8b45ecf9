import type { StreamCall, StreamEvent, UnaryReply } from "../call/call.js";
import type { CallControl } from "../call/control.js";
import { newId } from "../call/ids.js";
import { flattenMetadata, forwardable, type Metadata } from "../call/metadata.js";
import type { ServiceContract } from "../contracts/contract.js";
import { type ExtractedCorrelation, extractCorrelation } from "../contracts/correlation.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { Delivery, ProcessClient } from "../process/process-client.js";
import type { JournalRecord } from "../store/records.js";
import type { AdmissionLanes } from "./admission-lanes.js";
import { checkPayloadSize, waitSignal } from "./call-limits.js";
import { deliveryOf, sessionlessPlace } from "./delivery-of.js";
import { EnvelopeKind, faultOf } from "./envelope-codec.js";
import type { Journal } from "./journal.js";
import type { LiveSession } from "./live-session.js";
import { abortedBySessionEnd, deadlineExceeded, waitAborted, withSession } from "./session-errors.js";
import type { SessionLifecycle } from "./session-lifecycle.js";
import type { Release } from "./turn-queue.js";

export interface StreamRun {
  readonly call: StreamCall;
  readonly control: CallControl;
  readonly service: ServiceContract;
  readonly process: ProcessClient;
  readonly journal: Journal;
  readonly lifecycle: SessionLifecycle;
  readonly lanes: AdmissionLanes;
  readonly maxPayloadBytes: number;
  track<T>(promise: Promise<T>): Promise<T>;
  resolve(
    correlation: ExtractedCorrelation | undefined,
  ): Promise<{ session: LiveSession; started: JournalRecord | undefined } | { reply: Promise<UnaryReply> }>;
  delivery(session: LiveSession, messageId: string): Delivery;
  laneOf(correlation: ExtractedCorrelation | undefined): string | undefined;
}

/**
 * Streaming calls through a session. The first request message decides the session (its
 * correlation values, S1–S5); the whole stream then holds one turn of the session (S6).
 * Every request message is journaled before it is forwarded (S9); response messages are
 * journaled as they pass and the final status is sent only once all of them are durable.
 */
export async function* runStream(run: StreamRun): AsyncGenerator<StreamEvent> {
  const { call, control, service } = run;
  const op = call.operation;
  if (control.seq !== undefined || control.idempotencyKey !== undefined) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.UNSUPPORTED_ON_STREAM,
      `${op.path} is a streaming call: sb-seq and Idempotency-Key apply to unary and one-way calls`,
    );
  }
  if (!service.sessionful) {
    yield* passthrough(run);
    return;
  }
  if (call.deadlineMs !== undefined && call.deadlineMs <= Date.now()) {
    throw deadlineExceeded("before the bridge accepted the call");
  }
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
  if (firstPayload !== undefined) checkPayloadSize(firstPayload, run.maxPayloadBytes);
  const correlation =
    op.correlation === undefined || firstPayload === undefined
      ? undefined
      : extractCorrelation(op, firstPayload);

  const lane = run.laneOf(correlation);
  const admit = async () => {
    const resolved = await run.resolve(correlation);
    if ("reply" in resolved)
      throw new BridgeError(Code.INTERNAL, Reason.INTERNAL, "unexpected replay for a stream");
    const { session, started } = resolved;
    const messageId = newId();
    const now = Date.now();
    session.lastActiveAtMs = now;
    session.inflight += 1;
    const entries: JournalRecord[] = started === undefined ? [] : [started];
    if (firstPayload !== undefined)
      entries.push(requestEntry(run, session, messageId, messageId, firstPayload, now));
    const accepted = run.journal.commit(session, { entries });
    const turn = session.turns.acquire(op.access, waitSignal(call));
    return { session, messageId, accepted, turn };
  };
  const { session, messageId, accepted, turn } =
    lane === undefined ? await admit() : await run.lanes.run(lane, admit);

  let release: Release | undefined;
  let finished = false;
  let settle: () => void = () => {};
  run.track(
    new Promise<void>((resolve) => {
      settle = resolve;
    }),
  );
  let lastCommit: Promise<void> = accepted;
  let failure: BridgeError | undefined;
  let trailers: Metadata = {};
  let responses = 0;
  try {
    yield { type: "session", sessionId: session.id, messageId };
    try {
      release = await turn;
      await accepted;
      if (!session.live) throw abortedBySessionEnd(session.id);
      if (call.deadlineMs !== undefined && call.deadlineMs <= Date.now()) {
        throw deadlineExceeded("while the call waited for its turn in the session");
      }
      const outbound = journaledRequests(run, session, messageId, firstPayload, requests, (commit) => {
        lastCommit = commit;
      });
      for await (const event of run.process.stream({
        ...run.delivery(session, messageId),
        messages: outbound,
      })) {
        if (event.type === "headers") {
          yield { type: "headers", metadata: forwardable(event.metadata) };
        } else if (event.type === "message") {
          responses += 1;
          const entry = run.journal.entry(session, {
            kind: EnvelopeKind.ENVELOPE_KIND_RESPONSE,
            messageId: newId(),
            inReplyTo: messageId,
            operation: op.path,
            principal: session.principal,
            timeMs: Date.now(),
            payload: event.payload,
            codec: call.codec,
          });
          lastCommit = run.journal.commit(session, { entries: [entry] });
          yield { type: "message", payload: event.payload };
        } else {
          trailers = forwardable(event.metadata);
        }
      }
    } catch (error) {
      failure = waitAborted(error, "while the stream waited for its turn in the session");
    }

    const now = Date.now();
    session.lastActiveAtMs = now;
    const outcome = run.journal.entry(session, {
      kind: failure === undefined ? EnvelopeKind.ENVELOPE_KIND_ACK : EnvelopeKind.ENVELOPE_KIND_FAULT,
      messageId: newId(),
      inReplyTo: messageId,
      operation: op.path,
      principal: session.principal,
      timeMs: now,
      metadata: { responses: String(responses), ...flattenMetadata(trailers) },
      ...(failure === undefined ? {} : { fault: faultOf(failure) }),
    });
    const entries = [outcome];
    if (failure === undefined && op.endsSession && session.live) {
      entries.push(run.lifecycle.end(session, "closed", "end-operation"));
    }
    session.inflight -= 1;
    finished = true;
    const previous = lastCommit;
    const recorded = run.journal.commit(session, { entries });
    release?.();
    run.lifecycle.settle(session, recorded);
    try {
      // S9: every entry of the stream is durable before the final status goes out.
      await Promise.all([previous, recorded]);
    } catch (error) {
      failure ??= BridgeError.from(error, Code.UNAVAILABLE, Reason.STORE_FAILURE);
    }
    if (failure !== undefined) throw withSession(failure, session.id);
    yield { type: "trailers", metadata: trailers };
  } finally {
    // Reached early when the caller stops reading: record that the call was cancelled
    // (the journal shows every request's outcome, S9) and give the turn back, now or
    // once it is granted, so the session is never left blocked.
    if (!finished) {
      session.inflight -= 1;
      const cancelled = run.journal.entry(session, {
        kind: EnvelopeKind.ENVELOPE_KIND_FAULT,
        messageId: newId(),
        inReplyTo: messageId,
        operation: op.path,
        principal: session.principal,
        timeMs: Date.now(),
        fault: faultOf(
          new BridgeError(Code.CANCELLED, Reason.CANCELLED, "the caller went away before the stream ended"),
        ),
      });
      const recorded = run.journal.commit(session, { entries: [cancelled] });
      recorded.catch(() => {});
      run.lifecycle.settle(session, recorded);
      if (release !== undefined) release();
      else
        turn.then(
          (r) => r(),
          () => {},
        );
    }
    settle();
  }
}

/** Request messages after the first, each journaled and durable before it is forwarded. */
async function* journaledRequests(
  run: StreamRun,
  session: LiveSession,
  streamId: string,
  first: Uint8Array | undefined,
  rest: AsyncIterator<Uint8Array>,
  committed: (commit: Promise<void>) => void,
): AsyncGenerator<Uint8Array> {
  if (first === undefined) return;
  yield first;
  for (;;) {
    const next = await rest.next();
    if (next.done === true) return;
    checkPayloadSize(next.value, run.maxPayloadBytes);
    const commit = run.journal.commit(session, {
      entries: [requestEntry(run, session, newId(), streamId, next.value, Date.now())],
    });
    committed(commit);
    await commit;
    yield next.value;
  }
}

function requestEntry(
  run: StreamRun,
  session: LiveSession,
  messageId: string,
  streamId: string,
  payload: Uint8Array,
  now: number,
): JournalRecord {
  const { call, control } = run;
  return run.journal.entry(session, {
    kind: EnvelopeKind.ENVELOPE_KIND_REQUEST,
    messageId,
    operation: call.operation.path,
    principal: call.principal,
    timeMs: now,
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

async function* passthrough(run: StreamRun): AsyncGenerator<StreamEvent> {
  const { call, control } = run;
  const messageId = newId();
  yield { type: "session", sessionId: undefined, messageId };
  const events = run.process.stream({
    ...deliveryOf(call, control, sessionlessPlace(messageId)),
    messages: call.messages,
  });
  for await (const event of events) {
    if (event.type === "message") yield event;
    else yield { type: event.type, metadata: forwardable(event.metadata) };
  }
}
