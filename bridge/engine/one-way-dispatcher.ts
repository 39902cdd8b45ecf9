import { setTimeout as sleep } from "node:timers/promises";
import { newId } from "../call/ids.js";
import type { OneWayConfig } from "../config/config.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { Logger } from "../logger.js";
import type { ProcessClient, UnaryDelivery } from "../process/process-client.js";
import { EnvelopeKind, faultOf } from "./envelope-codec.js";
import type { Journal } from "./journal.js";
import type { LiveSession } from "./live-session.js";
import { abortedBySessionEnd } from "./session-errors.js";
import type { SessionLifecycle } from "./session-lifecycle.js";
import type { Release } from "./turn-queue.js";

/** Codes worth another attempt: the process may well accept the same message later. */
const RETRYABLE = new Set<Code>([
  Code.UNAVAILABLE,
  Code.DEADLINE_EXCEEDED,
  Code.RESOURCE_EXHAUSTED,
  Code.ABORTED,
]);

export interface OneWayJob {
  readonly session: LiveSession;
  readonly process: ProcessClient;
  /** The delivery, without deadline and signal: each attempt sets its own. */
  readonly delivery: Omit<UnaryDelivery, "deadlineMs" | "signal">;
  /** Resolves once the message is journaled; delivery never starts before (S9). */
  readonly accepted: Promise<void>;
  /** The message's turn in its session (S6). */
  readonly turn: Promise<Release>;
}

/**
 * Delivers one-way messages after their callers were acknowledged (S9), in session order
 * (S6), retrying with exponential backoff (S11). The outcome of each is journaled: an ACK
 * on success, a FAULT after the last attempt or when the session ended first. On shutdown
 * retries stop and the message stays in the outbox, to be delivered after restart (S10).
 */
export class OneWayDispatcher {
  readonly #journal: Journal;
  readonly #lifecycle: SessionLifecycle;
  readonly #policy: OneWayConfig;
  readonly #logger: Logger;
  readonly #stopping = new AbortController();
  readonly #running = new Set<Promise<void>>();

  constructor(journal: Journal, lifecycle: SessionLifecycle, policy: OneWayConfig, logger: Logger) {
    this.#journal = journal;
    this.#lifecycle = lifecycle;
    this.#policy = policy;
    this.#logger = logger;
  }

  get pending(): number {
    return this.#running.size;
  }

  dispatch(job: OneWayJob): void {
    const run = this.#run(job);
    this.#running.add(run);
    void run.finally(() => this.#running.delete(run));
  }

  /** Stops retrying and waits for deliveries in progress to settle. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    await Promise.allSettled([...this.#running]);
  }

  async #run(job: OneWayJob): Promise<void> {
    const { session } = job;
    let release: Release | undefined;
    let failure: BridgeError | undefined;
    let attempts = 0;
    try {
      await job.accepted;
    } catch {
      // Never journaled, so never acknowledged: the caller got the store's error.
      session.inflight -= 1;
      job.turn.then(
        (r) => r(),
        () => {},
      );
      return;
    }
    try {
      release = await job.turn;
    } catch (error) {
      failure = BridgeError.from(error);
    }
    while (failure === undefined) {
      if (!session.live) {
        failure = abortedBySessionEnd(session.id);
        break;
      }
      if (this.#stopping.signal.aborted) {
        // Leave it in the outbox: the next start delivers it with the same id (S10).
        session.inflight -= 1;
        release?.();
        return;
      }
      attempts += 1;
      try {
        await job.process.unary({
          ...job.delivery,
          deadlineMs: Date.now() + this.#policy.attemptTimeoutMs,
          signal: this.#stopping.signal,
        });
        break;
      } catch (error) {
        const cause = BridgeError.from(error);
        if (this.#stopping.signal.aborted) continue;
        if (!RETRYABLE.has(cause.code) || attempts >= this.#policy.maxAttempts) {
          failure = new BridgeError(
            cause.code,
            Reason.DELIVERY_FAILED,
            `one-way delivery failed after ${attempts} attempt(s): ${cause.message}`,
            { metadata: { attempts: String(attempts), cause_reason: cause.reason }, details: cause.details },
          );
          break;
        }
        this.#logger.debug(
          { session: session.id, message: job.delivery.messageId, attempts, code: cause.code },
          "one-way delivery failed; retrying",
        );
        await sleep(this.#backoffMs(attempts), undefined, { signal: this.#stopping.signal }).catch(() => {});
      }
    }
    const now = Date.now();
    session.lastActiveAtMs = now;
    session.inflight -= 1;
    const outcome = this.#journal.entry(session, {
      kind: failure === undefined ? EnvelopeKind.ENVELOPE_KIND_ACK : EnvelopeKind.ENVELOPE_KIND_FAULT,
      messageId: newId(),
      inReplyTo: job.delivery.messageId,
      operation: job.delivery.operation.path,
      principal: session.principal,
      timeMs: now,
      ...(failure === undefined ? {} : { fault: faultOf(failure) }),
      metadata: attempts > 0 ? { attempts: String(attempts) } : {},
    });
    const recorded = this.#journal.commit(session, {
      entries: [outcome],
      outboxRemove: [{ sessionId: session.id, messageId: job.delivery.messageId }],
    });
    release?.();
    this.#lifecycle.settle(session, recorded);
    await recorded.catch((error: unknown) => {
      this.#logger.error({ session: session.id, err: error }, "could not record a one-way outcome");
    });
  }

  /** Exponential backoff, capped, with "equal jitter": between half and all of the step. */
  #backoffMs(attempt: number): number {
    const ceiling = Math.min(this.#policy.maxBackoffMs, this.#policy.initialBackoffMs * 2 ** (attempt - 1));
    return Math.floor(ceiling / 2 + (Math.random() * ceiling) / 2);
  }
}
