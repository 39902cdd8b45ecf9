import type { CallContext, StreamCall, StreamEvent, UnaryCall, UnaryReply } from "../call/call.js";
import { type CallControl, readControl } from "../call/control.js";
import { newId } from "../call/ids.js";
import { flattenMetadata, forwardable, type Metadata } from "../call/metadata.js";
import type { DefaultsConfig } from "../config/config.js";
import type { ContractSet, OperationContract, ServiceContract } from "../contracts/contract.js";
import { type ExtractedCorrelation, extractCorrelation } from "../contracts/correlation.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import { type Logger, silentLogger } from "../logger.js";
import type { Delivery, ProcessClient, ProcessReply } from "../process/process-client.js";
import type { IdempotencyRecord, JournalRecord } from "../store/records.js";
import type { SessionStore } from "../store/session-store.js";
import { type Clock, systemClock } from "../util/clock.js";
import { AdmissionLanes } from "./admission-lanes.js";
import { checkPayloadSize, waitSignal } from "./call-limits.js";
import { deliveryOf, sessionlessPlace } from "./delivery-of.js";
import { decodeEnvelope, EnvelopeKind, encodeEnvelope, faultOf, makeEnvelope } from "./envelope-codec.js";
import { IdempotencyGuard } from "./idempotency-guard.js";
import { Journal } from "./journal.js";
import { JournalFeed } from "./journal-feed.js";
import { LifetimeMonitor } from "./lifetime-monitor.js";
import type { LiveSession } from "./live-session.js";
import { OneWayDispatcher } from "./one-way-dispatcher.js";
import { finalOutcome, outcomeNotRecorded, replayFromEnvelope } from "./replay.js";
import {
  abortedBySessionEnd,
  correlationError,
  deadlineExceeded,
  sessionEnded,
  sessionNotFound,
  waitAborted,
  withSession,
} from "./session-errors.js";
import { SessionLifecycle } from "./session-lifecycle.js";
import { SessionRegistry } from "./session-registry.js";
import { createSessionsApi, type SessionsApi } from "./sessions-api.js";
import { runStream } from "./stream-runner.js";
import type { Release } from "./turn-queue.js";

export interface BridgeOptions {
  readonly contracts: ContractSet;
  readonly store: SessionStore;
  /** The client for each service's process, by full service name. */
  readonly processes: ReadonlyMap<string, ProcessClient>;
  readonly defaults: DefaultsConfig;
  readonly logger?: Logger;
  /** Session time (S12 idle and lifetime, retention); the system clock unless a test moves it. */
  readonly clock?: Clock;
}

/**
 * The session engine behind every adapter. Adapters hand it calls in the internal form
 * and get replies or BridgeErrors back; it never learns which transport a call used.
 */
export interface Bridge {
  readonly contracts: ContractSet;
  /** Unary calls, one-way calls included (S9: those resolve once journaled). */
  unary(call: UnaryCall): Promise<UnaryReply>;
  /** Any streaming call; the first event says which session it reached. */
  stream(call: StreamCall): AsyncIterable<StreamEvent>;
  /** The SessionService operations. */
  readonly sessions: SessionsApi;
  /** Restores sessions and resumes undelivered one-way messages (S10). Call once, first. */
  start(): Promise<void>;
  /** Stops accepting calls and waits up to `graceMs` for calls in flight. */
  drain(graceMs?: number): Promise<void>;
  /** Drains, then closes the store. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export function createBridge(options: BridgeOptions): Bridge {
  return new BridgeEngine(options);
}

/** What admission decided for a unary call: run it, or answer from the record. */
interface Admitted {
  readonly reply: Promise<UnaryReply>;
}

/** A unary call accepted into a session: journaled (or being journaled), waiting its turn. */
interface Accepted {
  readonly session: LiveSession;
  readonly call: UnaryCall;
  readonly control: CallControl;
  readonly messageId: string;
  readonly payload: Uint8Array;
  readonly seq: number;
  readonly accepted: Promise<void>;
  readonly turn: Promise<Release>;
  readonly idempotency: IdempotencyRecord | undefined;
  /** The caller's metadata as it may travel on (S13, S15), filtered once. */
  readonly forwarded: Metadata;
}

const EMPTY = new Uint8Array(0);

class BridgeEngine implements Bridge {
  readonly contracts: ContractSet;
  readonly sessions: SessionsApi;
  readonly #store: SessionStore;
  readonly #processes: ReadonlyMap<string, ProcessClient>;
  readonly #defaults: DefaultsConfig;
  readonly #logger: Logger;
  readonly #clock: Clock;
  readonly #registry = new SessionRegistry();
  readonly #feed = new JournalFeed();
  readonly #journal: Journal;
  readonly #lifecycle: SessionLifecycle;
  readonly #monitor: LifetimeMonitor;
  readonly #idempotency: IdempotencyGuard;
  readonly #oneWay: OneWayDispatcher;
  readonly #lanes = new AdmissionLanes();
  readonly #inflight = new Set<Promise<unknown>>();
  #state: "new" | "running" | "draining" | "closed" = "new";
  #purgeTimer: NodeJS.Timeout | undefined;
  #closing: Promise<void> | undefined;

  constructor(options: BridgeOptions) {
    this.contracts = options.contracts;
    this.#store = options.store;
    this.#processes = options.processes;
    this.#defaults = options.defaults;
    this.#logger = options.logger ?? silentLogger;
    this.#clock = options.clock ?? systemClock;
    this.#journal = new Journal(this.#store, this.#feed);
    this.#lifecycle = new SessionLifecycle(
      this.#registry,
      this.#journal,
      this.#feed,
      this.#defaults,
      this.#clock,
    );
    this.#monitor = new LifetimeMonitor(this.#clock, (session, reason) => this.#expire(session, reason));
    this.#lifecycle.attachMonitor(this.#monitor);
    this.#idempotency = new IdempotencyGuard(this.#store, this.#defaults.idempotencyRetentionMs);
    this.#oneWay = new OneWayDispatcher(this.#journal, this.#lifecycle, this.#defaults.oneWay, this.#logger);
    this.sessions = createSessionsApi({
      store: this.#store,
      registry: this.#registry,
      feed: this.#feed,
      close: (session) => this.#closeSession(session),
    });
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    if (this.#state !== "new")
      throw new BridgeError(Code.FAILED_PRECONDITION, Reason.INTERNAL, "bridge already started");
    const recovered = await this.#store.recover();
    for (const record of recovered.sessions) {
      const service = this.contracts.services.get(record.service);
      if (service === undefined) {
        this.#logger.warn(
          { session: record.id, service: record.service },
          "session of a service no longer configured",
        );
        continue;
      }
      this.#lifecycle.restore(record, service);
    }
    // S10: undelivered one-way messages go first, in journal order, with their ids.
    for (const item of recovered.outbox) await this.#redeliverOneWay(item.sessionId, item.messageId);
    this.#state = "running";
    this.#purge();
    this.#purgeTimer = setInterval(() => this.#purge(), 60 * 60_000);
    this.#purgeTimer.unref();
    this.#logger.info(
      { sessions: this.#registry.size, outbox: recovered.outbox.length, store: this.#store.kind },
      "bridge started",
    );
  }

  async drain(graceMs = 10_000): Promise<void> {
    if (this.#state === "closed" || this.#state === "draining") return;
    this.#state = "draining";
    if (this.#purgeTimer !== undefined) clearInterval(this.#purgeTimer);
    const settled = Promise.allSettled([...this.#inflight]);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
      timer.unref();
    });
    await Promise.race([settled, timeout]);
    if (timer !== undefined) clearTimeout(timer);
    await this.#oneWay.stop();
    this.#monitor.stop();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.drain();
      this.#state = "closed";
      await this.#store.close();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  // ---------------------------------------------------------------- unary

  async unary(call: UnaryCall): Promise<UnaryReply> {
    this.#assertRunning();
    const op = call.operation;
    const service = this.#service(op);
    const control = readControl(call.metadata);
    checkPayloadSize(call.payload, this.#defaults.maxPayloadBytes);
    if (!service.sessionful) return this.#track(this.#passthrough(call, control));
    if (call.deadlineMs !== undefined && call.deadlineMs <= Date.now()) {
      throw deadlineExceeded("before the bridge accepted the call");
    }
    const correlation = op.correlation === undefined ? undefined : extractCorrelation(op, call.payload);
    const admit = (): Promise<Admitted> => this.#admit(call, control, service, correlation);
    const lane = laneOf(service, control, correlation);
    const admitted = lane === undefined ? await admit() : await this.#lanes.run(lane, admit);
    return this.#track(admitted.reply);
  }

  async #admit(
    call: UnaryCall,
    control: CallControl,
    service: ServiceContract,
    correlation: ExtractedCorrelation | undefined,
  ): Promise<Admitted> {
    const op = call.operation;
    let hash: string | undefined;
    if (control.idempotencyKey !== undefined) {
      // S8 comes first: a retried starter must get its recorded outcome, not a new session.
      hash = IdempotencyGuard.hash(op.path, call.payload);
      const check = await this.#idempotency.check(call.principal, control.idempotencyKey, hash);
      if (check.type === "replay") {
        const { sessionId, messageId, outcome } = check.record;
        return { reply: this.#replay(sessionId, messageId, outcome) };
      }
      if (check.type === "interrupted") return { reply: this.#resume(call, control, check.record) };
    }
    const resolved = await this.#resolve(call, control, service, correlation);
    if ("reply" in resolved) return resolved;
    const { session, started } = resolved;
    if (control.seq !== undefined) {
      // S7: numbered messages count 1, 2, 3, …; the number is taken at arrival.
      if (control.seq < session.nextSeq)
        return { reply: this.#replaySeq(session, control.seq, call, control) };
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
    return { reply: this.#accept(call, control, session, started, hash) };
  }

  /**
   * Finds or starts the session a call belongs to (S1–S5). Runs inside the call's
   * admission lane, so two calls for the same session resolve in arrival order.
   */
  async #resolve(
    call: UnaryCall | CallContext,
    control: CallControl,
    service: ServiceContract,
    correlation: ExtractedCorrelation | undefined,
  ): Promise<{ session: LiveSession; started: JournalRecord | undefined } | Admitted> {
    const op = call.operation;
    if (control.sessionId !== undefined) {
      const session = this.#registry.get(control.sessionId);
      if (session !== undefined && session.principal === call.principal) {
        if (session.service !== service) {
          throw correlationError(op.path, `session ${session.id} belongs to ${session.service.name}`);
        }
        if (
          correlation !== undefined &&
          session.correlationKey !== undefined &&
          correlation.key !== session.correlationKey
        ) {
          throw correlationError(
            op.path,
            `the request's correlation values do not match session ${session.id}`,
          );
        }
        return { session, started: undefined };
      }
      const record = await this.#store.getSession(control.sessionId);
      if (record === undefined || record.principal !== call.principal || record.service !== service.name) {
        throw sessionNotFound(control.sessionId);
      }
      // A retried number of an ended session still gets its recorded outcome (S7).
      if (control.seq !== undefined && control.seq < record.nextSeq && "payload" in call) {
        return { reply: this.#replayEndedSeq(record.id, control.seq) };
      }
      throw sessionEnded(record);
    }

    let target: LiveSession | undefined;
    if (correlation !== undefined) target = this.#registry.byCorrelation(service.name, correlation.key);
    else if (service.execution !== "concurrent") target = this.#registry.current(service.name);

    // Under SEQUENTIAL an uncorrelated starter opens the next session in line (S6).
    const startsNext = op.startsSession && service.execution === "sequential" && correlation === undefined;
    if (target !== undefined && !startsNext) {
      if (target.principal !== call.principal) {
        if (op.startsSession) throw alreadyExists(op, target.id, false);
        throw correlationError(op.path, "no live session matches the request's correlation values");
      }
      if (op.startsSession && service.startReuse === "reject-duplicate")
        throw alreadyExists(op, target.id, true);
      return { session: target, started: undefined };
    }
    if (!op.startsSession) {
      throw correlationError(
        op.path,
        correlation === undefined
          ? `no session of ${service.name} is running`
          : "no live session matches the request's correlation values",
      );
    }
    if (service.execution === "single" && this.#registry.current(service.name) !== undefined) {
      throw new BridgeError(
        Code.FAILED_PRECONDITION,
        Reason.SINGLE_SESSION_ACTIVE,
        `${service.name} runs a single session and another one is live`,
      );
    }
    if (control.seq !== undefined) {
      throw new BridgeError(
        Code.INVALID_ARGUMENT,
        Reason.INVALID_SEQ,
        "a message that starts a session takes no sb-seq: numbering starts with the next message (S7)",
      );
    }
    const started = this.#lifecycle.start({
      service,
      operation: op.path,
      principal: call.principal,
      correlationSet: correlation?.set,
      correlation: correlation?.values ?? {},
      correlationKey: correlation?.key,
    });
    // The registry refuses only a key bound meanwhile, which the lane rules out.
    if (started === undefined)
      throw new BridgeError(Code.ABORTED, Reason.INTERNAL, "correlation race; retry");
    return { session: started.session, started: started.started };
  }

  /**
   * Accepts a call into its session: journals it (S9), takes its place in the session's
   * turn order (S6) synchronously, so that arrival order is delivery order.
   */
  #accept(
    call: UnaryCall,
    control: CallControl,
    session: LiveSession,
    started: JournalRecord | undefined,
    hash: string | undefined,
  ): Promise<UnaryReply> {
    const op = call.operation;
    const now = this.#clock.now();
    const messageId = newId();
    const seq = control.seq ?? 0;
    session.lastActiveAtMs = now;
    session.inflight += 1;
    const forwarded = forwardable(call.metadata);
    const request = this.#journal.entry(session, {
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
    const idempotency =
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
    const accepted = this.#journal.commit(session, {
      entries: started === undefined ? [request] : [started, request],
      ...(idempotency === undefined ? {} : { idempotency: [idempotency] }),
      ...(op.oneWay ? { outboxAdd: [{ sessionId: session.id, messageId, index: request.index }] } : {}),
    });

    let reply: Promise<UnaryReply>;
    if (op.oneWay) {
      this.#oneWay.dispatch({
        session,
        process: this.#process(op),
        delivery: {
          ...this.#delivery(session, call, control, messageId, seq, true, forwarded),
          payload: call.payload,
        },
        accepted,
        turn: session.turns.acquire(op.access),
      });
      reply = accepted.then(
        () => ({ payload: EMPTY, sessionId: session.id, messageId, headers: {}, trailers: {} }),
        (error: unknown) => {
          throw withSession(BridgeError.from(error), session.id);
        },
      );
    } else {
      const turn = session.turns.acquire(op.access, waitSignal(call));
      reply = this.#run({
        session,
        call,
        control,
        messageId,
        payload: call.payload,
        seq,
        accepted,
        turn,
        idempotency,
        forwarded,
      });
    }
    this.#trackCompletion(session, control, call.principal, hash, messageId, reply);
    return reply;
  }

  /** Delivers an accepted request-response call in its turn and records its outcome. */
  async #run(a: Accepted): Promise<UnaryReply> {
    const { session, call } = a;
    const op = call.operation;
    let release: Release | undefined;
    let reply: ProcessReply | undefined;
    let failure: BridgeError | undefined;
    try {
      release = await a.turn;
      await a.accepted;
      if (!session.live) throw abortedBySessionEnd(session.id);
      if (call.deadlineMs !== undefined && call.deadlineMs <= Date.now()) {
        throw deadlineExceeded("while the call waited for its turn in the session");
      }
      reply = await this.#process(op).unary({
        ...this.#delivery(session, call, a.control, a.messageId, a.seq, false, a.forwarded),
        payload: a.payload,
      });
    } catch (error) {
      failure = waitAborted(error, "while the call waited for its turn in the session");
    }

    const now = this.#clock.now();
    session.lastActiveAtMs = now;
    session.inflight -= 1;
    const headers = reply === undefined ? {} : forwardable(reply.headers);
    const trailers = reply === undefined ? {} : forwardable(reply.trailers);
    const outcome = this.#journal.entry(session, {
      kind: failure === undefined ? EnvelopeKind.ENVELOPE_KIND_RESPONSE : EnvelopeKind.ENVELOPE_KIND_FAULT,
      messageId: newId(),
      inReplyTo: a.messageId,
      operation: op.path,
      principal: session.principal,
      timeMs: now,
      ...(reply === undefined
        ? {}
        : {
            payload: reply.payload,
            codec: call.codec,
            metadata: { ...flattenMetadata(headers), ...flattenMetadata(trailers) },
          }),
      ...(failure === undefined ? {} : { fault: faultOf(failure) }),
    });
    const entries = [outcome];
    // S12: a successful end-session operation ends the session; what queued behind it aborts.
    if (failure === undefined && op.endsSession && session.live) {
      entries.push(this.#lifecycle.end(session, "closed", "end-operation"));
    }
    const recorded = this.#journal.commit(session, {
      entries,
      ...(a.idempotency === undefined
        ? {}
        : { idempotency: [{ ...a.idempotency, outcome: outcome.envelope }] }),
    });
    release?.();
    this.#lifecycle.settle(session, recorded);
    try {
      // S9: the outcome is durable before the caller hears it.
      await recorded;
    } catch (error) {
      failure ??= BridgeError.from(error, Code.UNAVAILABLE, Reason.STORE_FAILURE);
    }
    if (failure !== undefined || reply === undefined) {
      throw withSession(failure ?? outcomeNotRecorded(a.messageId), session.id);
    }
    return { payload: reply.payload, sessionId: session.id, messageId: a.messageId, headers, trailers };
  }

  // ---------------------------------------------------------------- duplicates and retries

  /** S8: the recorded outcome of an idempotent call, from the record or the journal. */
  async #replay(
    sessionId: string | undefined,
    messageId: string,
    outcome: Uint8Array | undefined,
  ): Promise<UnaryReply> {
    if (outcome !== undefined) return replayFromEnvelope(decodeEnvelope(outcome), sessionId, messageId);
    if (sessionId === undefined) throw outcomeNotRecorded(messageId);
    const exchange = await this.#store.findByMessageId(sessionId, messageId);
    const final = exchange === undefined ? undefined : finalOutcome(exchange);
    if (final === undefined) throw outcomeNotRecorded(messageId);
    return replayFromEnvelope(final, sessionId, messageId);
  }

  /** S7: a number already taken: wait for it if in flight, then answer from the journal. */
  async #replaySeq(
    session: LiveSession,
    seq: number,
    call: UnaryCall,
    control: CallControl,
  ): Promise<UnaryReply> {
    const pending = session.pendingSeq(seq);
    if (pending !== undefined) await pending;
    const exchange = await this.#store.findBySeq(session.id, seq);
    if (exchange === undefined) {
      throw new BridgeError(
        Code.FAILED_PRECONDITION,
        Reason.OUT_OF_SEQUENCE,
        `sb-seq ${seq} was already used in session ${session.id} and its outcome is no longer kept`,
        { metadata: { expected_seq: String(session.nextSeq), session_id: session.id } },
      );
    }
    const final = finalOutcome(exchange);
    if (final !== undefined) return replayFromEnvelope(final, session.id, exchange.request.messageId);
    // Accepted before a restart and never answered: deliver it again, same id (S10).
    return this.#redeliver(session, call, control, decodeEnvelope(exchange.request.envelope), undefined);
  }

  async #replayEndedSeq(sessionId: string, seq: number): Promise<UnaryReply> {
    const exchange = await this.#store.findBySeq(sessionId, seq);
    const final = exchange === undefined ? undefined : finalOutcome(exchange);
    if (exchange === undefined || final === undefined) {
      const record = await this.#store.getSession(sessionId);
      throw record === undefined ? sessionNotFound(sessionId) : sessionEnded(record);
    }
    return replayFromEnvelope(final, sessionId, exchange.request.messageId);
  }

  /** S8 + S10: an idempotent call accepted before a restart and never answered. */
  async #resume(call: UnaryCall, control: CallControl, record: IdempotencyRecord): Promise<UnaryReply> {
    const session = record.sessionId === undefined ? undefined : this.#registry.get(record.sessionId);
    if (session === undefined) {
      throw record.sessionId === undefined
        ? outcomeNotRecorded(record.messageId)
        : abortedBySessionEnd(record.sessionId);
    }
    const exchange = await this.#store.findByMessageId(session.id, record.messageId);
    if (exchange === undefined) throw outcomeNotRecorded(record.messageId);
    return this.#redeliver(session, call, control, decodeEnvelope(exchange.request.envelope), record);
  }

  /** Delivers a journaled request again under its original message id and payload. */
  #redeliver(
    session: LiveSession,
    call: UnaryCall,
    control: CallControl,
    request: ReturnType<typeof decodeEnvelope>,
    idempotency: IdempotencyRecord | undefined,
  ): Promise<UnaryReply> {
    if (!session.live) return Promise.reject(abortedBySessionEnd(session.id));
    session.inflight += 1;
    session.lastActiveAtMs = this.#clock.now();
    const reply = this.#run({
      session,
      call,
      control,
      messageId: request.messageId,
      payload: request.payload,
      seq: request.seq,
      accepted: Promise.resolve(),
      turn: session.turns.acquire(call.operation.access, waitSignal(call)),
      idempotency,
      forwarded: forwardable(call.metadata),
    });
    const done = settledOf(reply);
    if (request.seq > 0) session.trackSeq(request.seq, done);
    if (idempotency !== undefined) {
      // Later retries of the same key wait for this delivery instead of starting another.
      this.#idempotency.track(idempotency.principal, idempotency.key, {
        hash: idempotency.requestHash,
        sessionId: session.id,
        messageId: request.messageId,
        done,
      });
    }
    return reply;
  }

  /** S10: a one-way message from the outbox, back in its session's order. */
  async #redeliverOneWay(sessionId: string, messageId: string): Promise<void> {
    const exchange = await this.#store.findByMessageId(sessionId, messageId);
    const session = this.#registry.get(sessionId);
    if (exchange === undefined || session === undefined) {
      // The session ended (or the entry is gone): nothing can be delivered any more.
      await this.#store.commit({ outboxRemove: [{ sessionId, messageId }] });
      return;
    }
    const envelope = decodeEnvelope(exchange.request.envelope);
    const op = this.contracts.operations.get(envelope.operation);
    if (op === undefined) {
      await this.#store.commit({ outboxRemove: [{ sessionId, messageId }] });
      return;
    }
    session.inflight += 1;
    this.#oneWay.dispatch({
      session,
      process: this.#process(op),
      delivery: {
        operation: op,
        messageId,
        sessionId,
        seq: envelope.seq,
        oneWay: true,
        principal: envelope.principal,
        correlation: envelope.correlation,
        metadata: Object.fromEntries(Object.entries(envelope.metadata).map(([k, v]) => [k, [v]])),
        traceparent: envelope.traceparent || undefined,
        tracestate: envelope.tracestate || undefined,
        codec: envelope.codec === "json" ? "json" : "proto",
        payload: envelope.payload,
      },
      accepted: Promise.resolve(),
      turn: session.turns.acquire(op.access),
    });
  }

  #trackCompletion(
    session: LiveSession,
    control: CallControl,
    principal: string,
    hash: string | undefined,
    messageId: string,
    reply: Promise<UnaryReply>,
  ): void {
    const done = settledOf(reply);
    if (control.seq !== undefined) session.trackSeq(control.seq, done);
    if (control.idempotencyKey !== undefined && hash !== undefined) {
      this.#idempotency.track(principal, control.idempotencyKey, {
        hash,
        sessionId: session.id,
        messageId,
        done,
      });
    }
  }

  // ---------------------------------------------------------------- streams

  stream(call: StreamCall): AsyncIterable<StreamEvent> {
    this.#assertRunning();
    const service = this.#service(call.operation);
    const control = readControl(call.metadata);
    return runStream({
      call,
      control,
      service,
      process: this.#process(call.operation),
      journal: this.#journal,
      lifecycle: this.#lifecycle,
      lanes: this.#lanes,
      maxPayloadBytes: this.#defaults.maxPayloadBytes,
      track: (p) => this.#track(p),
      resolve: (correlation) => this.#resolve(call, control, service, correlation),
      delivery: (session, messageId) => this.#delivery(session, call, control, messageId, 0, false),
      laneOf: (correlation) => laneOf(service, control, correlation),
    });
  }

  // ---------------------------------------------------------------- sessions

  #closeSession(session: LiveSession): Promise<void> {
    if (!session.live) return Promise.resolve();
    const ended = this.#lifecycle.end(session, "closed", "closed");
    const committed = this.#journal.commit(session, { entries: [ended] });
    this.#lifecycle.settle(session, committed);
    return committed;
  }

  #expire(session: LiveSession, reason: "idle-timeout" | "max-lifetime"): void {
    const ended = this.#lifecycle.end(session, "expired", reason);
    const committed = this.#journal.commit(session, { entries: [ended] });
    this.#lifecycle.settle(session, committed);
    committed.catch((error: unknown) =>
      this.#logger.error({ session: session.id, err: error }, "could not record expiry"),
    );
  }

  #purge(): void {
    const now = this.#clock.now();
    this.#store
      .purge(now - this.#defaults.sessionRetentionMs, now - this.#defaults.idempotencyRetentionMs)
      .then((removed) => {
        if (removed.sessions + removed.idempotency > 0) this.#logger.info(removed, "purged expired records");
      })
      .catch((error: unknown) => this.#logger.error({ err: error }, "purge failed"));
  }

  // ---------------------------------------------------------------- helpers

  /** Sessionless services: a plain, metadata- and deadline-preserving proxy hop. */
  async #passthrough(call: UnaryCall, control: CallControl): Promise<UnaryReply> {
    if (control.seq !== undefined || control.idempotencyKey !== undefined) {
      throw new BridgeError(
        Code.INVALID_ARGUMENT,
        Reason.INVALID_REQUEST,
        `${call.operation.service} has no sessions: sb-seq and Idempotency-Key do not apply to it`,
      );
    }
    const messageId = newId();
    const reply = await this.#process(call.operation).unary({
      ...deliveryOf(call, control, sessionlessPlace(messageId)),
      payload: call.payload,
    });
    return {
      payload: reply.payload,
      sessionId: undefined,
      messageId,
      headers: forwardable(reply.headers),
      trailers: forwardable(reply.trailers),
    };
  }

  #delivery(
    session: LiveSession,
    call: CallContext,
    control: CallControl,
    messageId: string,
    seq: number,
    oneWay: boolean,
    forwarded?: Metadata,
  ): Delivery {
    const place = { messageId, sessionId: session.id, correlation: session.correlation, seq, oneWay };
    return deliveryOf(call, control, place, forwarded);
  }

  #service(op: OperationContract): ServiceContract {
    const service = this.contracts.services.get(op.service);
    if (service === undefined) {
      throw new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.UNKNOWN_OPERATION,
        `${op.path} is not a configured operation`,
      );
    }
    return service;
  }

  #process(op: OperationContract): ProcessClient {
    const process = this.#processes.get(op.service);
    if (process === undefined) {
      throw new BridgeError(Code.UNAVAILABLE, Reason.NO_PROCESS, `no process serves ${op.service}`);
    }
    return process;
  }

  #assertRunning(): void {
    if (this.#state !== "running") {
      throw new BridgeError(
        Code.UNAVAILABLE,
        Reason.SHUTTING_DOWN,
        this.#state === "new" ? "the bridge is starting" : "the bridge is shutting down",
      );
    }
  }

  /** Remembers a call until it settles, so drain() can wait for it. */
  #track<T>(promise: Promise<T>): Promise<T> {
    this.#inflight.add(promise);
    const forget = (): void => {
      this.#inflight.delete(promise);
    };
    promise.then(forget, forget);
    return promise;
  }
}

/**
 * The admission lane of a call: calls that may reach the same session share one. Calls
 * that can only start a fresh, uncorrelated session need none.
 */
function laneOf(
  service: ServiceContract,
  control: CallControl,
  correlation: ExtractedCorrelation | undefined,
): string | undefined {
  if (control.sessionId !== undefined) return `id\n${control.sessionId}`;
  if (correlation !== undefined) return `key\n${service.name}\n${correlation.key}`;
  if (service.execution !== "concurrent") return `service\n${service.name}`;
  return undefined;
}

function alreadyExists(op: OperationContract, sessionId: string, owned: boolean): BridgeError {
  return new BridgeError(
    Code.ALREADY_EXISTS,
    Reason.SESSION_ALREADY_EXISTS,
    `${op.path}: a live session already has these correlation values`,
    owned ? { metadata: { session_id: sessionId } } : {},
  );
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

function settledOf(promise: Promise<unknown>): Promise<void> {
  return promise.then(
    () => undefined,
    () => undefined,
  );
}
