import { createHash } from "node:crypto";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { IdempotencyRecord } from "../store/records.js";
import type { SessionStore } from "../store/session-store.js";
import type { Clock } from "../util/clock.js";

/** What an Idempotency-Key tells the engine to do with a call (S8). */
export type IdempotencyCheck =
  | { readonly type: "fresh" }
  /** The key's first call finished (or was accepted and is still running here). */
  | {
      readonly type: "replay";
      readonly record: Pick<IdempotencyRecord, "sessionId" | "messageId" | "outcome">;
    }
  /** The key's first call was accepted but the bridge stopped before it finished (S10). */
  | { readonly type: "interrupted"; readonly record: IdempotencyRecord };

interface InFlight {
  readonly hash: string;
  readonly sessionId: string | undefined;
  readonly messageId: string;
  readonly done: Promise<void>;
}

/**
 * Idempotency keys, scoped by principal (S8). A key seen within the retention window with
 * the same operation and payload gets the recorded outcome; with anything else, a
 * distinct error. A retry that arrives while the first call is still running waits for it.
 */
export class IdempotencyGuard {
  readonly #store: SessionStore;
  readonly #retentionMs: number;
  readonly #clock: Clock;
  readonly #inflight = new Map<string, InFlight>();

  constructor(store: SessionStore, retentionMs: number, clock: Clock) {
    this.#store = store;
    this.#clock = clock;
    this.#retentionMs = retentionMs;
  }

  static hash(operation: string, payload: Uint8Array): string {
    return createHash("sha256").update(operation).update("\0").update(payload).digest("base64url");
  }

  async check(principal: string, key: string, hash: string): Promise<IdempotencyCheck> {
    const running = this.#inflight.get(scope(principal, key));
    if (running !== undefined) {
      if (running.hash !== hash) throw reused(key);
      await running.done;
      return {
        type: "replay",
        record: { sessionId: running.sessionId, messageId: running.messageId, outcome: undefined },
      };
    }
    const record = await this.#store.getIdempotency(principal, key);
    if (record === undefined || record.createdAtMs < this.#clock.now() - this.#retentionMs)
      return { type: "fresh" };
    if (record.requestHash !== hash) throw reused(key);
    return record.outcome === undefined ? { type: "interrupted", record } : { type: "replay", record };
  }

  /** Marks an accepted call as the key's first call until `done` settles. */
  track(principal: string, key: string, entry: InFlight): void {
    const k = scope(principal, key);
    this.#inflight.set(k, entry);
    void entry.done.finally(() => {
      if (this.#inflight.get(k) === entry) this.#inflight.delete(k);
    });
  }
}

function scope(principal: string, key: string): string {
  return `${principal}\n${key}`;
}

function reused(key: string): BridgeError {
  return new BridgeError(
    Code.FAILED_PRECONDITION,
    Reason.IDEMPOTENCY_KEY_REUSED,
    `Idempotency-Key ${JSON.stringify(key)} was already used for a different request`,
  );
}
