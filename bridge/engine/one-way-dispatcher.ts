import { setMaxListeners } from "node:events";
import { setTimeout as sleep } from "node:timers/promises";
import type { OneWayConfig } from "../config/config.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { Logger } from "../logger.js";
import type { ProcessClient, UnaryDelivery } from "../process/process-client.js";
import { EnvelopeKind, faultOf } from "./envelope-codec.js";
import type { SessionCall } from "./session-call.js";
import { abortedBySessionEnd } from "./session-errors.js";

/** Codes worth another attempt: the process may well accept the same message later. */
const RETRYABLE = new Set<Code>([
  Code.UNAVAILABLE,
  Code.DEADLINE_EXCEEDED,
  Code.RESOURCE_EXHAUSTED,
  Code.ABORTED,
]);

export interface OneWayJob {
  /** The accepted message in its session: its turn, in-flight count and outcome (S6, S9). */
  readonly call: SessionCall;
  readonly process: ProcessClient;
  /** The delivery, without deadline and signal: each attempt sets its own. */
  readonly delivery: Omit<UnaryDelivery, "deadlineMs" | "signal">;
}

/**
 * Delivers one-way messages after their callers were acknowledged (S9), in session order
 * (S6), retrying with capped exponential backoff (S11). The outcome of each is journaled:
 * an ACK on success, a FAULT after the last attempt or when the session ended first (and
 * the final failure is logged at warn). On shutdown retries stop and the message stays in
 * the outbox, to be delivered after restart (S10).
 */
export class OneWayDispatcher {
  readonly #policy: OneWayConfig;
  readonly #logger: Logger;
  readonly #stopping = new AbortController();
  readonly #running = new Set<Promise<void>>();

  constructor(policy: OneWayConfig, logger: Logger) {
    // Every attempt in flight listens on the stop signal until it ends: many is normal.
    setMaxListeners(0, this.#stopping.signal);
    this.#policy = policy;
    this.#logger = logger;
  }

  get pending(): number {
    return this.#running.size;
  }

  dispatch(job: OneWayJob): void {
    const run = this.#run(job).catch((error: unknown) => {
      this.#logger.error(
        { session: job.call.session.id, err: error },
        "one-way delivery failed unexpectedly",
      );
    });
    this.#running.add(run);
    void run.finally(() => this.#running.delete(run));
  }

  /** Stops retrying and waits for deliveries in progress to settle. */
  async stop(): Promise<void> {
    this.#stopping.abort();
    await Promise.allSettled([...this.#running]);
  }

  async #run(job: OneWayJob): Promise<void> {
    const { call } = job;
    const session = call.session;
    let failure: BridgeError | undefined;
    let attempts = 0;
    try {
      await call.ready();
    } catch (error) {
      if (!call.recordable) {
        // Never journaled, so never acknowledged: the caller got the store's error.
        await call.finish({ kind: EnvelopeKind.ENVELOPE_KIND_FAULT });
        return;
      }
      failure = BridgeError.from(error);
    }
    while (failure === undefined) {
      if (!session.live) {
        failure = abortedBySessionEnd(session.id);
        break;
      }
      if (this.#stopping.signal.aborted) {
        // Leave it in the outbox: the next start delivers it with the same id (S10). Its
        // turn is given back without an outcome entry; the session is closing anyway.
        call.abandon();
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
          this.#logger.warn(
            {
              session: session.id,
              message: job.delivery.messageId,
              operation: job.delivery.operation.path,
              attempts,
              code: cause.code,
              reason: cause.reason,
            },
            "one-way delivery failed for good; the failure is in the session's journal",
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
    try {
      await call.finish({
        kind: failure === undefined ? EnvelopeKind.ENVELOPE_KIND_ACK : EnvelopeKind.ENVELOPE_KIND_FAULT,
        ...(failure === undefined ? {} : { fault: faultOf(failure) }),
        metadata: attempts > 0 ? { attempts: String(attempts) } : {},
      });
    } catch (error) {
      this.#logger.error({ session: session.id, err: error }, "could not record a one-way outcome");
    }
  }

  /** Exponential backoff, capped, with "equal jitter": between half and all of the step. */
  #backoffMs(attempt: number): number {
    const ceiling = Math.min(this.#policy.maxBackoffMs, this.#policy.initialBackoffMs * 2 ** (attempt - 1));
    return Math.floor(ceiling / 2 + (Math.random() * ceiling) / 2);
  }
}
