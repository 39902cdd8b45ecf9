import { setMaxListeners } from "node:events";
import type { DefaultsConfig } from "../config/config.js";
import type { ContractSet, OperationContract } from "../contracts/contract.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { Logger } from "../logger.js";
import type { ProcessClient } from "../process/process-client.js";
import type { SessionStore } from "../store/session-store.js";
import type { Clock } from "../util/clock.js";
import type { AdmissionLanes } from "./admission-lanes.js";
import type { IdempotencyGuard } from "./idempotency-guard.js";
import type { Journal } from "./journal.js";
import type { JournalFeed } from "./journal-feed.js";
import type { OneWayDispatcher } from "./one-way-dispatcher.js";
import type { SessionLifecycle } from "./session-lifecycle.js";
import type { SessionRegistry } from "./session-registry.js";

/** The engine's parts, shared by the modules that handle one aspect of a call each. */
export interface EngineContext {
  readonly contracts: ContractSet;
  readonly store: SessionStore;
  readonly processes: ReadonlyMap<string, ProcessClient>;
  readonly defaults: DefaultsConfig;
  readonly logger: Logger;
  readonly clock: Clock;
  readonly registry: SessionRegistry;
  readonly feed: JournalFeed;
  readonly journal: Journal;
  readonly lifecycle: SessionLifecycle;
  readonly idempotency: IdempotencyGuard;
  readonly oneWay: OneWayDispatcher;
  readonly lanes: AdmissionLanes;
  /** Remembers a call until it settles, so drain() can wait for it. */
  track<T>(promise: Promise<T>): Promise<T>;
}

/** The client of the process serving `op`'s service. */
export function processFor(ctx: EngineContext, op: OperationContract): ProcessClient {
  const process = ctx.processes.get(op.service);
  if (process === undefined) {
    throw new BridgeError(Code.UNAVAILABLE, Reason.NO_PROCESS, `no process serves ${op.service}`);
  }
  return process;
}

/**
 * Deliveries are not cancelled when their caller leaves: once a message has gone to the
 * process, its outcome is whatever the process answers, and that is what the journal
 * records (S9). The caller's deadline still bounds the delivery (S15).
 */
export const NEVER_ABORTED: AbortSignal = new AbortController().signal;
// Every delivery in flight listens on it (and stops listening when it ends): many at once
// is normal, not a leak.
setMaxListeners(0, NEVER_ABORTED);
