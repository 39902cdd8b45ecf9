import { newId } from "../call/ids.js";
import type { DefaultsConfig } from "../config/config.js";
import type { ServiceContract } from "../contracts/contract.js";
import type { EndReason, JournalRecord, SessionRecord, SessionState } from "../store/records.js";
import type { Clock } from "../util/clock.js";
import { EnvelopeKind } from "./envelope-codec.js";
import type { Journal } from "./journal.js";
import type { JournalFeed } from "./journal-feed.js";
import type { LifetimeMonitor } from "./lifetime-monitor.js";
import { LiveSession } from "./live-session.js";
import { abortedBySessionEnd } from "./session-errors.js";
import type { SessionRegistry } from "./session-registry.js";

export interface StartFacts {
  readonly service: ServiceContract;
  readonly operation: string;
  readonly principal: string;
  readonly correlationSet: string | undefined;
  readonly correlation: Readonly<Record<string, string>>;
  readonly correlationKey: string | undefined;
}

/**
 * Starting and ending sessions: the registry, the modality line, the lifetime monitor
 * and the journal's lifecycle events change together here and nowhere else.
 */
export class SessionLifecycle {
  readonly #registry: SessionRegistry;
  readonly #journal: Journal;
  readonly #feed: JournalFeed;
  readonly #defaults: DefaultsConfig;
  readonly #clock: Clock;
  #monitor: LifetimeMonitor | undefined;
  readonly #newSessionId: (service: ServiceContract, correlationKey: string | undefined) => string;

  constructor(
    registry: SessionRegistry,
    journal: Journal,
    feed: JournalFeed,
    defaults: DefaultsConfig,
    clock: Clock,
    /** Several replicas (DESIGN §7): ids drawn in the starter's partition. */
    newSessionId?: (service: ServiceContract, correlationKey: string | undefined) => string,
  ) {
    this.#newSessionId = newSessionId ?? (() => newId());
    this.#clock = clock;
    this.#registry = registry;
    this.#journal = journal;
    this.#feed = feed;
    this.#defaults = defaults;
  }

  attachMonitor(monitor: LifetimeMonitor): void {
    this.#monitor = monitor;
  }

  /**
   * S2: creates and registers a session, binding its correlation values atomically.
   * Returns undefined when the values were bound by another live session in the meantime.
   * The returned entry (a "session.started" event) must go into the session's next commit.
   */
  start(facts: StartFacts): { session: LiveSession; started: JournalRecord } | undefined {
    const now = this.#clock.now();
    const record: SessionRecord = {
      id: this.#newSessionId(facts.service, facts.correlationKey),
      service: facts.service.name,
      state: "active",
      endReason: undefined,
      correlationSet: facts.correlationSet,
      correlation: facts.correlation,
      correlationKey: facts.correlationKey,
      principal: facts.principal,
      createdAtMs: now,
      lastActiveAtMs: now,
      endedAtMs: undefined,
      // S12 under defaults.timeScale: expiry checked in seconds instead of minutes.
      idleTimeoutMs: scaled(
        facts.service.idleTimeoutMs ?? this.#defaults.idleTimeoutMs,
        this.#defaults.timeScale,
      ),
      maxLifetimeMs: scaled(
        facts.service.maxLifetimeMs ?? this.#defaults.maxLifetimeMs,
        this.#defaults.timeScale,
      ),
      nextSeq: 1,
      journalLength: 0,
    };
    // Paused until the registry says it is first in its modality line (S6).
    const session = new LiveSession(record, facts.service, true);
    const { added, first } = this.#registry.add(session);
    if (!added) return undefined;
    if (first) session.turns.resume();
    this.#monitor?.watch(session);
    const started = this.#journal.entry(session, {
      kind: EnvelopeKind.ENVELOPE_KIND_EVENT,
      messageId: newId(),
      operation: facts.operation,
      principal: facts.principal,
      timeMs: now,
      correlation: facts.correlation,
      metadata: { event: "session.started" },
    });
    return { session, started };
  }

  /** Registers a session recovered from the store (S10). */
  restore(record: SessionRecord, service: ServiceContract): LiveSession {
    const session = new LiveSession(record, service, true);
    const { first } = this.#registry.add(session);
    if (first) session.turns.resume();
    this.#monitor?.watch(session);
    return session;
  }

  /**
   * S12: ends a live session. Its correlation values are released at once, the next
   * session of a SEQUENTIAL service may run, and everything still queued is rejected with
   * ABORTED/SESSION_ENDED. Calls already running finish normally. Returns the
   * "session.ended" event, which the caller commits (with whatever else it records).
   */
  end(session: LiveSession, state: Exclude<SessionState, "active">, reason: EndReason): JournalRecord {
    const now = this.#clock.now();
    session.state = state;
    session.endReason = reason;
    session.endedAtMs = now;
    this.#feed.ended(session.id);
    this.#monitor?.forget();
    const next = this.#registry.remove(session);
    next?.turns.resume();
    session.turns.rejectWaiting(() => abortedBySessionEnd(session.id));
    return this.#journal.entry(session, {
      kind: EnvelopeKind.ENVELOPE_KIND_EVENT,
      messageId: newId(),
      operation: "",
      principal: session.principal,
      timeMs: now,
      metadata: { event: "session.ended", state, reason },
    });
  }

  /**
   * Tells History followers the journal is complete once the session has ended and its
   * last call has recorded its outcome.
   */
  settle(session: LiveSession, lastCommit: Promise<void>): void {
    if (session.live || session.inflight > 0) return;
    void lastCommit.then(
      () => this.#feed.complete(session.id),
      () => this.#feed.complete(session.id),
    );
  }
}

/** A timeout multiplied by the time scale, at least 1 ms; unchanged without a scale. */
function scaled(ms: number, scale: number | undefined): number {
  return scale === undefined || scale === 1 ? ms : Math.max(1, Math.round(ms * scale));
}
