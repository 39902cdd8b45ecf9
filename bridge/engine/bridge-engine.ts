import type { StreamCall, StreamEvent, UnaryCall, UnaryReply } from "../call/call.js";
import { readControl } from "../call/control.js";
import { checkForwardable, forwardable } from "../call/metadata.js";
import type { DefaultsConfig } from "../config/config.js";
import type { ContractSet, OperationContract, ServiceContract } from "../contracts/contract.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import { type Logger, silentLogger } from "../logger.js";
import type { ProcessClient } from "../process/process-client.js";
import type { SessionStore } from "../store/session-store.js";
import { type Clock, systemClock, type Timer } from "../util/clock.js";
import { AdmissionLanes } from "./admission-lanes.js";
import { checkPayloadSize } from "./call-limits.js";
import type { EngineContext } from "./engine-context.js";
import { IdempotencyGuard } from "./idempotency-guard.js";
import { Journal } from "./journal.js";
import { JournalFeed } from "./journal-feed.js";
import { LifetimeMonitor } from "./lifetime-monitor.js";
import type { LiveSession } from "./live-session.js";
import { OneWayDispatcher } from "./one-way-dispatcher.js";
import {
  adoptSessions,
  releaseSessions,
  type SessionFilter,
  type SessionPlacement,
} from "./partition-sessions.js";
import { passthroughUnary } from "./passthrough-unary.js";
import { recoverSessions } from "./recovery.js";
import { deadlineExceeded } from "./session-errors.js";
import { SessionLifecycle } from "./session-lifecycle.js";
import { SessionRegistry } from "./session-registry.js";
import { createSessionsApi, type SessionsApi } from "./sessions-api.js";
import { runStream } from "./stream-runner.js";
import { unaryInSession } from "./unary-call.js";

export interface BridgeOptions {
  readonly contracts: ContractSet;
  readonly store: SessionStore;
  /** The client for each service's process, by full service name. */
  readonly processes: ReadonlyMap<string, ProcessClient>;
  readonly defaults: DefaultsConfig;
  readonly logger?: Logger;
  /** Session time (S12 idle and lifetime, retention); the system clock unless a test moves it. */
  readonly clock?: Clock;
  /**
   * One replica of several on a shared store (DESIGN §7): new sessions are born where this
   * says, and start() restores nothing; the engine holds what adopt() loads.
   */
  readonly placement?: SessionPlacement;
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
  /** What the engine holds now: the figures that must stay flat under turnover (S12). */
  stats(): EngineStats;
  /** Restores sessions and re-queues what was accepted and never answered (S10). Call once, first. */
  start(): Promise<void>;
  /** Stops accepting calls and waits up to `graceMs` for calls in flight. */
  drain(graceMs?: number): Promise<void>;
  /**
   * Several replicas (DESIGN §7): loads the live sessions `owns` selects and re-queues
   * their unanswered requests (S10), once this replica owns them.
   */
  adopt(owns: SessionFilter): Promise<{ restored: number; requeued: number }>;
  /** Several replicas: drops the sessions `owns` selects, now owned elsewhere. */
  release(owns: SessionFilter): number;
  /** Drains, then closes the store. Idempotent. */
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

export interface EngineStats {
  /** Live sessions held in memory. */
  readonly liveSessions: number;
  /** Entries of the lifetime heap (live sessions plus ended ones not yet dropped). */
  readonly lifetimeEntries: number;
  /** Calls in flight. */
  readonly inflightCalls: number;
  /** Calls started since the bridge was created (a monotonic count, for activity checks). */
  readonly callsStarted: number;
  /** One-way messages being delivered or waiting to be retried (S11). */
  readonly oneWayDeliveries: number;
}

export function createBridge(options: BridgeOptions): Bridge {
  return new BridgeEngine(options);
}

/**
 * How often ended sessions and old idempotency records are purged: every half retention
 * period, so nothing outlives its retention by more than half of it, and at most hourly.
 */
function purgeIntervalMs(defaults: DefaultsConfig): number {
  const shortest = Math.min(defaults.sessionRetentionMs, defaults.idempotencyRetentionMs);
  return Math.min(60 * 60_000, Math.max(1000, Math.floor(shortest / 2)));
}

/**
 * Wires the engine's parts and owns its lifecycle; each aspect of a call lives in its own
 * module: admission and routing (unary-call.ts, session-router.ts), the call in its
 * session (session-call.ts), replays (recorded-replies.ts), streams (stream-runner.ts),
 * one-way delivery (one-way-dispatcher.ts), recovery (recovery.ts), lifetime
 * (session-lifecycle.ts, lifetime-monitor.ts).
 */
class BridgeEngine implements Bridge {
  readonly contracts: ContractSet;
  readonly sessions: SessionsApi;
  readonly #ctx: EngineContext;
  readonly #monitor: LifetimeMonitor;
  #inflight = new Set<Promise<unknown>>();
  #callsStarted = 0;
  #state: "new" | "running" | "draining" | "closed" = "new";
  #purgeTimer: Timer | undefined;
  #closing: Promise<void> | undefined;
  readonly #placed: boolean;

  constructor(options: BridgeOptions) {
    this.contracts = options.contracts;
    const clock = options.clock ?? systemClock;
    const logger = options.logger ?? silentLogger;
    const registry = new SessionRegistry();
    const feed = new JournalFeed();
    const journal = new Journal(options.store, feed);
    const lifecycle = new SessionLifecycle(
      registry,
      journal,
      feed,
      options.defaults,
      clock,
      options.placement?.newSessionId.bind(options.placement),
    );
    this.#placed = options.placement !== undefined;
    this.#monitor = new LifetimeMonitor(clock, (session, reason) => this.#expire(session, reason));
    lifecycle.attachMonitor(this.#monitor);
    this.#ctx = {
      contracts: options.contracts,
      store: options.store,
      processes: options.processes,
      defaults: options.defaults,
      logger,
      clock,
      registry,
      feed,
      journal,
      lifecycle,
      idempotency: new IdempotencyGuard(options.store, options.defaults.idempotencyRetentionMs, clock),
      oneWay: new OneWayDispatcher(options.defaults.oneWay, logger),
      lanes: new AdmissionLanes(),
      track: (promise) => this.#track(promise),
    };
    this.sessions = createSessionsApi({
      store: options.store,
      registry,
      feed,
      close: (session) => this.#closeSession(session),
    });
  }

  // ---------------------------------------------------------------- lifecycle

  async start(): Promise<void> {
    if (this.#state !== "new") {
      throw new BridgeError(Code.FAILED_PRECONDITION, Reason.INTERNAL, "bridge already started");
    }
    const ctx = this.#ctx;
    const recovered = this.#placed ? { sessions: [], outbox: [] } : await ctx.store.recover();
    // S10: what was accepted and never answered is queued first, in journal order.
    const { restored, requeued } = await recoverSessions(ctx, recovered.sessions, recovered.outbox);
    this.#state = "running";
    this.#purge();
    this.#schedulePurge();
    ctx.logger.info({ sessions: restored, requeued, store: ctx.store.kind }, "bridge started");
  }

  async drain(graceMs = 10_000): Promise<void> {
    if (this.#state === "closed" || this.#state === "draining") return;
    this.#state = "draining";
    this.#purgeTimer?.cancel();
    const settled = Promise.allSettled([...this.#inflight]);
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, graceMs);
      timer.unref();
    });
    await Promise.race([settled, timeout]);
    if (timer !== undefined) clearTimeout(timer);
    await this.#ctx.oneWay.stop();
    this.#monitor.stop();
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.drain();
      this.#state = "closed";
      await this.#ctx.store.close();
    })();
    return this.#closing;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  adopt(owns: SessionFilter): Promise<{ restored: number; requeued: number }> {
    return adoptSessions(this.#ctx, owns);
  }

  release(owns: SessionFilter): number {
    return releaseSessions(this.#ctx, owns);
  }

  stats(): EngineStats {
    return {
      liveSessions: this.#ctx.registry.size,
      lifetimeEntries: this.#monitor.size,
      inflightCalls: this.#inflight.size,
      callsStarted: this.#callsStarted,
      oneWayDeliveries: this.#ctx.oneWay.pending,
    };
  }

  // ---------------------------------------------------------------- calls

  async unary(call: UnaryCall): Promise<UnaryReply> {
    this.#assertRunning();
    const service = this.#service(call.operation);
    const control = readControl(call.metadata);
    checkForwardable(forwardable(call.metadata));
    checkPayloadSize(call.payload, this.#ctx.defaults.maxPayloadBytes);
    if (!service.sessionful) return this.#track(passthroughUnary(this.#ctx, call, control));
    if (call.deadlineMs !== undefined && call.deadlineMs <= Date.now()) {
      throw deadlineExceeded("before the bridge accepted the call");
    }
    return unaryInSession(this.#ctx, call, control, service);
  }

  stream(call: StreamCall): AsyncIterable<StreamEvent> {
    this.#assertRunning();
    const service = this.#service(call.operation);
    const control = readControl(call.metadata);
    checkForwardable(forwardable(call.metadata));
    return runStream(this.#ctx, call, control, service);
  }

  // ---------------------------------------------------------------- sessions

  #closeSession(session: LiveSession): Promise<void> {
    if (!session.live) return Promise.resolve();
    const { lifecycle, journal } = this.#ctx;
    const ended = lifecycle.end(session, "closed", "closed");
    const committed = journal.commit(session, { entries: [ended] });
    lifecycle.settle(session, committed);
    return committed;
  }

  #expire(session: LiveSession, reason: "idle-timeout" | "max-lifetime"): void {
    const { lifecycle, journal, logger, registry } = this.#ctx;
    // A session released to another replica is no longer this engine's to end.
    if (registry.get(session.id) !== session) return;
    const ended = lifecycle.end(session, "expired", reason);
    const committed = journal.commit(session, { entries: [ended] });
    lifecycle.settle(session, committed);
    committed.catch((error: unknown) =>
      logger.error({ session: session.id, err: error }, "could not record expiry"),
    );
  }

  #schedulePurge(): void {
    this.#purgeTimer = this.#ctx.clock.setTimer(() => {
      if (this.#state !== "running") return;
      this.#purge();
      this.#schedulePurge();
    }, purgeIntervalMs(this.#ctx.defaults));
  }

  #purge(): void {
    const { clock, store, defaults, logger } = this.#ctx;
    const now = clock.now();
    store
      .purge(now - defaults.sessionRetentionMs, now - defaults.idempotencyRetentionMs)
      .then((removed) => {
        if (removed.sessions + removed.idempotency > 0) logger.info(removed, "purged expired records");
      })
      .catch((error: unknown) => logger.error({ err: error }, "purge failed"));
  }

  // ---------------------------------------------------------------- helpers

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
    this.#callsStarted += 1;
    this.#inflight.add(promise);
    const forget = (): void => {
      this.#inflight.delete(promise);
      // An emptied set is replaced rather than kept: once a long-lived Set is in the old
      // generation, V8 allocates each table it rehashes into (every few adds and deletes)
      // in the old generation too, garbage only a full collection frees; a fresh one
      // starts young (profile-bridged-memory.md, "Hidden classes made per call").
      if (this.#inflight.size === 0) this.#inflight = new Set();
    };
    promise.then(forget, forget);
    return promise;
  }
}
