/**
 * Machine-readable fault reasons (rule S14). Clients branch on these, so they are part of
 * the public contract: add new ones, never rename.
 */
export const Reason = {
  /** S4: a non-starter matched no live session, or values contradict the session named. */
  CORRELATION_ERROR: "CORRELATION_ERROR",
  /** S4: the request could not be decoded where correlation needs it. */
  MALFORMED_MESSAGE: "MALFORMED_MESSAGE",
  /** S4: an alias field of the correlation set is absent from the request. */
  MISSING_CORRELATION_VALUE: "MISSING_CORRELATION_VALUE",
  /** S4: a correlation value is longer than defaults.maxCorrelationValueBytes. */
  CORRELATION_VALUE_TOO_LARGE: "CORRELATION_VALUE_TOO_LARGE",
  /** S3: a starter matched a live session and the contract rejects duplicates. */
  SESSION_ALREADY_EXISTS: "SESSION_ALREADY_EXISTS",
  /** S6: a SINGLE service already has a live session with other correlation values. */
  SINGLE_SESSION_ACTIVE: "SINGLE_SESSION_ACTIVE",
  /** S7: sb-seq skipped ahead; metadata `expected_seq` says which number is next. */
  OUT_OF_SEQUENCE: "OUT_OF_SEQUENCE",
  /** S7: sb-seq is not a positive integer, or was sent where numbers do not apply. */
  INVALID_SEQ: "INVALID_SEQ",
  /** S8: the Idempotency-Key was used before with a different request. */
  IDEMPOTENCY_KEY_REUSED: "IDEMPOTENCY_KEY_REUSED",
  /** S8: the Idempotency-Key is empty, too long or not printable ASCII. */
  INVALID_IDEMPOTENCY_KEY: "INVALID_IDEMPOTENCY_KEY",
  /** S12: the session was closed (end operation or explicit close). */
  SESSION_CLOSED: "SESSION_CLOSED",
  /** S12: the session ended by idle timeout or maximum lifetime. */
  SESSION_EXPIRED: "SESSION_EXPIRED",
  /** S12: the session ended while this message was queued; it was never delivered. */
  SESSION_ENDED: "SESSION_ENDED",
  /** S1: sb-session-id is not a session id (1-128 URL-safe characters). */
  INVALID_SESSION_ID: "INVALID_SESSION_ID",
  /** S1: no session with this id (or not visible to the caller). */
  SESSION_NOT_FOUND: "SESSION_NOT_FOUND",
  /** S15: the deadline passed before or during delivery. */
  DEADLINE_EXCEEDED: "DEADLINE_EXCEEDED",
  /** The operation is not part of any configured contract. */
  UNKNOWN_OPERATION: "UNKNOWN_OPERATION",
  /** No process is configured for the operation's service. */
  NO_PROCESS: "NO_PROCESS",
  /** The process could not be reached. */
  PROCESS_UNAVAILABLE: "PROCESS_UNAVAILABLE",
  /** The process answered with a fault that carried no reason of its own. */
  PROCESS_FAULT: "PROCESS_FAULT",
  /** S11: a one-way delivery failed after every configured attempt. */
  DELIVERY_FAILED: "DELIVERY_FAILED",
  /** The caller cancelled the call. */
  CANCELLED: "CANCELLED",
  /** S10: the bridge restarted while the call was in flight. */
  BRIDGE_RESTARTED: "BRIDGE_RESTARTED",
  /** The bridge is shutting down and accepts no new calls. */
  SHUTTING_DOWN: "SHUTTING_DOWN",
  /** Invalid configuration or contract. */
  INVALID_CONFIG: "INVALID_CONFIG",
  /** A metadata key or value that the bridge could not deliver to a process. */
  INVALID_METADATA: "INVALID_METADATA",
  /** A request to the bridge's own API was invalid. */
  INVALID_REQUEST: "INVALID_REQUEST",
  /** Sequence numbers and idempotency keys need a single request message. */
  UNSUPPORTED_ON_STREAM: "UNSUPPORTED_ON_STREAM",
  /** The store failed to record the message; nothing was delivered. */
  STORE_FAILURE: "STORE_FAILURE",
  /**
   * The memory store holds all that storeOptions.maxMemoryBytes allows (RESOURCE_EXHAUSTED):
   * nothing of the message was recorded or delivered. Room comes back as sessions end and
   * idempotency records are purged; retry later.
   */
  STORE_FULL: "STORE_FULL",
  /**
   * S9: a journal append did not continue the session's stored journal (another writer
   * appended first, or an index was skipped or repeated); nothing of the batch was
   * recorded. Metadata `expected_index` says which index the journal takes next.
   */
  JOURNAL_CONFLICT: "JOURNAL_CONFLICT",
  /**
   * Several replicas (DESIGN §7): the session's partition is changing owner, or its owner
   * cannot be reached now; nothing of the call was recorded. Retry (UNAVAILABLE).
   */
  PARTITION_MOVING: "PARTITION_MOVING",
  /** An unexpected failure inside the bridge. */
  INTERNAL: "INTERNAL",
} as const;

export type Reason = (typeof Reason)[keyof typeof Reason];
