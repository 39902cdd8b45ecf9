/** What a store keeps: plain data, no behaviour, identical for every implementation. */

export type SessionState = "active" | "closed" | "expired";

export type EndReason = "end-operation" | "closed" | "idle-timeout" | "max-lifetime";

export interface SessionRecord {
  /** Bridge-issued, ≥128 random bits, URL-safe (S1). */
  readonly id: string;
  /** Full service name. */
  readonly service: string;
  readonly state: SessionState;
  readonly endReason: EndReason | undefined;
  /** Name of the correlation set bound at start, if any. */
  readonly correlationSet: string | undefined;
  /** Canonical text of each bound value, by variable (S2). */
  readonly correlation: Readonly<Record<string, string>>;
  /**
   * The correlation index key bound to this session while it is live (S5): unique among
   * live sessions of a service. Undefined for sessions without correlation.
   */
  readonly correlationKey: string | undefined;
  /** The principal that started the session and owns it (S13). */
  readonly principal: string;
  readonly createdAtMs: number;
  /**
   * A store may report a later time than committed, never an earlier one: that of the
   * session's last journal entry, which is activity too.
   */
  readonly lastActiveAtMs: number;
  readonly endedAtMs: number | undefined;
  /** Timeouts captured at start, so a config change does not rewrite live sessions. */
  readonly idleTimeoutMs: number;
  readonly maxLifetimeMs: number;
  /** The sb-seq expected next (S7): numbered messages count 1, 2, 3, … */
  readonly nextSeq: number;
  /** Number of journal entries; the next entry gets index journalLength + 1. */
  readonly journalLength: number;
}

/** One journal entry (S9): an encoded sessionbridge.v1.Envelope plus the columns needed to find it. */
export interface JournalRecord {
  readonly sessionId: string;
  /** 1-based position in the session's journal. */
  readonly index: number;
  readonly messageId: string;
  /** Envelope kind number (sessionbridge.v1.EnvelopeKind). */
  readonly kind: number;
  /** Client sequence number of a numbered request, 0 otherwise. */
  readonly seq: number;
  /** For outcomes: the message id of the request they answer; "" otherwise. */
  readonly inReplyTo: string;
  readonly recordedAtMs: number;
  /** The encoded Envelope. */
  readonly envelope: Uint8Array;
}

/** A one-way message accepted but not yet delivered (S10): the delivery outbox. */
export interface OutboxRecord {
  readonly sessionId: string;
  readonly messageId: string;
  /** Journal index of the one-way message, which fixes delivery order. */
  readonly index: number;
}

/** Idempotency-Key record (S8), scoped by principal. */
export interface IdempotencyRecord {
  readonly principal: string;
  readonly key: string;
  /** Hash of operation and payload, to tell a retry from a different request. */
  readonly requestHash: string;
  readonly operation: string;
  /** Session the call reached, when it reached one. */
  readonly sessionId: string | undefined;
  readonly messageId: string;
  readonly createdAtMs: number;
  /** Encoded outcome Envelope (RESPONSE, ACK or FAULT); undefined while in flight. */
  readonly outcome: Uint8Array | undefined;
}
