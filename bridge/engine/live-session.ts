import type { ServiceContract } from "../contracts/contract.js";
import type { EndReason, SessionRecord, SessionState } from "../store/records.js";
import { TurnQueue } from "./turn-queue.js";

/**
 * A live session as the engine works with it: the durable record's fields, kept mutable
 * here and snapshotted into a SessionRecord with every commit, plus the runtime state that
 * never reaches the store (turn queue, in-flight counters). Kept lean: an idle session
 * should cost well under 1 KB (DESIGN §6), so the optional parts are created on demand.
 */
export class LiveSession {
  readonly id: string;
  readonly service: ServiceContract;
  readonly principal: string;
  readonly correlationSet: string | undefined;
  readonly correlation: Readonly<Record<string, string>>;
  readonly correlationKey: string | undefined;
  readonly createdAtMs: number;
  readonly idleTimeoutMs: number;
  readonly maxLifetimeMs: number;
  state: SessionState = "active";
  endReason: EndReason | undefined;
  endedAtMs: number | undefined;
  lastActiveAtMs: number;
  nextSeq: number;
  journalLength: number;
  /** Calls admitted and not yet finished (queued or running), one-way deliveries included. */
  inflight = 0;
  /** S6: SEQUENTIAL sessions start paused until the sessions before them end. */
  readonly turns: TurnQueue;
  /** S7: completion of numbered calls still in flight, so duplicates can wait for them. */
  #pendingBySeq: Map<number, Promise<void>> | undefined;

  constructor(record: SessionRecord, service: ServiceContract, paused: boolean) {
    this.id = record.id;
    this.service = service;
    this.principal = record.principal;
    this.correlationSet = record.correlationSet;
    this.correlation = record.correlation;
    this.correlationKey = record.correlationKey;
    this.createdAtMs = record.createdAtMs;
    this.idleTimeoutMs = record.idleTimeoutMs;
    this.maxLifetimeMs = record.maxLifetimeMs;
    this.state = record.state;
    this.endReason = record.endReason;
    this.endedAtMs = record.endedAtMs;
    this.lastActiveAtMs = record.lastActiveAtMs;
    this.nextSeq = record.nextSeq;
    this.journalLength = record.journalLength;
    this.turns = new TurnQueue(paused);
  }

  get live(): boolean {
    return this.state === "active";
  }

  /** Reserves the next journal index (entries are numbered 1, 2, 3, … per session). */
  nextIndex(): number {
    this.journalLength += 1;
    return this.journalLength;
  }

  pendingSeq(seq: number): Promise<void> | undefined {
    return this.#pendingBySeq?.get(seq);
  }

  trackSeq(seq: number, done: Promise<void>): void {
    this.#pendingBySeq ??= new Map();
    this.#pendingBySeq.set(seq, done);
    void done.finally(() => {
      this.#pendingBySeq?.delete(seq);
      if (this.#pendingBySeq?.size === 0) this.#pendingBySeq = undefined;
    });
  }

  toRecord(): SessionRecord {
    return {
      id: this.id,
      service: this.service.name,
      state: this.state,
      endReason: this.endReason,
      correlationSet: this.correlationSet,
      correlation: this.correlation,
      correlationKey: this.correlationKey,
      principal: this.principal,
      createdAtMs: this.createdAtMs,
      lastActiveAtMs: this.lastActiveAtMs,
      endedAtMs: this.endedAtMs,
      idleTimeoutMs: this.idleTimeoutMs,
      maxLifetimeMs: this.maxLifetimeMs,
      nextSeq: this.nextSeq,
      journalLength: this.journalLength,
    };
  }
}
