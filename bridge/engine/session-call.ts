import { newId } from "../call/ids.js";
import type { Access } from "../contracts/contract.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { IdempotencyRecord, JournalRecord } from "../store/records.js";
import type { Clock } from "../util/clock.js";
import type { EnvelopeFields, EnvelopeKind, Fault } from "./envelope-codec.js";
import type { Journal } from "./journal.js";
import type { LiveSession } from "./live-session.js";
import type { SessionLifecycle } from "./session-lifecycle.js";
import type { Release, TurnWait } from "./turn-queue.js";

/** What a SessionCall needs from the engine. */
export interface SessionCallDeps {
  readonly journal: Journal;
  readonly lifecycle: SessionLifecycle;
  readonly clock: Clock;
}

/** How a call ended, as its outcome entry records it (S9). */
export interface Outcome {
  readonly kind:
    | EnvelopeKind.ENVELOPE_KIND_RESPONSE
    | EnvelopeKind.ENVELOPE_KIND_ACK
    | EnvelopeKind.ENVELOPE_KIND_FAULT;
  readonly payload?: Uint8Array;
  readonly codec?: string;
  readonly metadata?: Readonly<Record<string, string>>;
  readonly fault?: Fault;
}

export interface FinishOptions {
  /** S12: the call was a successful end-session operation; the session ends with its outcome. */
  readonly endsSession?: boolean;
  /** S8: the key's record, completed with this outcome. */
  readonly idempotency?: IdempotencyRecord;
}

/**
 * One accepted call in a session, from acceptance to its recorded outcome: the one object
 * that owns the call's in-flight count, its turn (S6) and the session's activity (S12).
 * Unary, one-way and streaming calls all end through finish(), which records the outcome,
 * ends the session for an end operation, commits, and gives the turn back, in that order.
 *
 * Both promises it waits on (acceptance, the turn) are observed from the moment it is
 * made, so neither can reject unobserved whatever happens to the call or its session.
 */
export class SessionCall {
  readonly session: LiveSession;
  /** Full method path of the call. */
  readonly operation: string;
  /** The request's message id: outcomes answer it (inReplyTo). */
  readonly messageId: string;
  /** True when the request is in the delivery outbox until its outcome is recorded (S10). */
  readonly pending: boolean;
  readonly #deps: SessionCallDeps;
  readonly #accepted: Promise<BridgeError | undefined>;
  readonly #turn: Promise<Release | Error>;
  #acceptFailed = false;
  #release: Release | undefined;
  #finished: Promise<void> | undefined;

  constructor(
    deps: SessionCallDeps,
    session: LiveSession,
    options: {
      readonly operation: string;
      readonly access: Access;
      readonly messageId: string;
      /** Resolves once the request is durable in the journal (S9). */
      readonly accepted: Promise<void>;
      readonly pending: boolean;
      readonly wait?: TurnWait;
    },
  ) {
    this.#deps = deps;
    this.session = session;
    this.operation = options.operation;
    this.messageId = options.messageId;
    this.pending = options.pending;
    session.inflight += 1;
    session.lastActiveAtMs = deps.clock.now();
    // Taken in the same turn as acceptance, so arrival order is turn order (S6).
    this.#turn = session.turns.acquire(options.access, options.wait).then(
      (release) => {
        if (this.#finished !== undefined) release();
        else this.#release = release;
        return release;
      },
      (error: unknown) => (error instanceof Error ? error : new Error(String(error))),
    );
    this.#accepted = options.accepted.then(
      () => undefined,
      (error: unknown) => {
        this.#acceptFailed = true;
        return BridgeError.from(error, Code.UNAVAILABLE, Reason.STORE_FAILURE);
      },
    );
  }

  /**
   * Resolves once the request is journaled and the call has its turn; throws why not
   * (the store failed, the caller left, its deadline passed, the session ended).
   */
  async ready(): Promise<void> {
    const acceptError = await this.#accepted;
    if (acceptError !== undefined) throw acceptError;
    const turn = await this.#turn;
    if (typeof turn !== "function") throw turn;
  }

  /** True while acceptance has not failed: only an accepted request gets an outcome entry. */
  get recordable(): boolean {
    return !this.#acceptFailed;
  }

  /**
   * Records the outcome (S9), ends the session if asked (S12), commits, and gives the
   * turn back (now, or as soon as it is granted). Returns the commit, which resolves once
   * the outcome is durable; the caller answers its client only after that. Idempotent.
   */
  finish(outcome: Outcome, options: FinishOptions = {}): Promise<void> {
    this.#finished ??= this.#finish(outcome, options);
    return this.#finished;
  }

  async #finish(outcome: Outcome, options: FinishOptions): Promise<void> {
    const { journal, lifecycle, clock } = this.#deps;
    const session = this.session;
    // The outcome goes after the request: wait until acceptance settled either way.
    const acceptError = await this.#accepted;
    session.lastActiveAtMs = clock.now();
    session.inflight -= 1;
    if (acceptError !== undefined) {
      // Never journaled, so never acknowledged: there is nothing to answer in the journal.
      this.#giveBack();
      lifecycle.settle(session, Promise.resolve());
      return;
    }
    const entry = journal.entry(session, outcomeFields(this, outcome, clock.now()));
    const entries: JournalRecord[] = [entry];
    if (options.endsSession === true && session.live) {
      entries.push(lifecycle.end(session, "closed", "end-operation"));
    }
    const recorded = journal.commit(session, {
      entries,
      ...(options.idempotency === undefined
        ? {}
        : { idempotency: [{ ...options.idempotency, outcome: entry.envelope }] }),
      ...(this.pending ? { outboxRemove: [{ sessionId: session.id, messageId: this.messageId }] } : {}),
    });
    // Given back after the commit is submitted, so the next call's entries follow this one's.
    this.#giveBack();
    lifecycle.settle(session, recorded);
    await recorded;
  }

  /**
   * Gives the turn back without an outcome: the bridge is stopping and the request stays
   * in the outbox, to be delivered again after the next start (S10).
   */
  abandon(): void {
    if (this.#finished !== undefined) return;
    this.#finished = Promise.resolve();
    this.session.inflight -= 1;
    this.#giveBack();
  }

  #giveBack(): void {
    if (this.#release !== undefined) this.#release();
    // Not granted yet: the grant handler releases it at once (see the constructor).
  }
}

function outcomeFields(call: SessionCall, outcome: Outcome, now: number): Omit<EnvelopeFields, "sessionId"> {
  return {
    kind: outcome.kind,
    messageId: newId(),
    inReplyTo: call.messageId,
    operation: call.operation,
    principal: call.session.principal,
    timeMs: now,
    ...(outcome.payload === undefined ? {} : { payload: outcome.payload }),
    ...(outcome.codec === undefined ? {} : { codec: outcome.codec }),
    ...(outcome.metadata === undefined ? {} : { metadata: outcome.metadata }),
    ...(outcome.fault === undefined ? {} : { fault: outcome.fault }),
  };
}
