import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";

/** The store could not record or read something; nothing of the failed batch was applied. */
export function storeFailure(message: string, cause?: unknown): BridgeError {
  return new BridgeError(Code.INTERNAL, Reason.STORE_FAILURE, message, cause === undefined ? {} : { cause });
}

/** Any thrown value as a STORE_FAILURE, keeping BridgeErrors (such as ALREADY_EXISTS) unchanged. */
export function asStoreError(error: unknown, doing: string): BridgeError {
  if (error instanceof BridgeError) return error;
  const detail = error instanceof Error ? error.message : String(error);
  return storeFailure(`${doing}: ${detail}`, error);
}

/** S5: a batch tried to bind correlation values already bound to another live session. */
export function correlationTaken(service: string, sessionId: string): BridgeError {
  return new BridgeError(
    Code.ALREADY_EXISTS,
    Reason.SESSION_ALREADY_EXISTS,
    `another live session of ${service} already has the correlation values of session ${sessionId}`,
  );
}

/** Calls made after close() began. */
export function storeClosed(kind: string): BridgeError {
  return new BridgeError(Code.UNAVAILABLE, Reason.SHUTTING_DOWN, `the ${kind} store is closed`);
}

/** A query argument the store cannot honour (bad page token, negative limit, …). */
export function invalidQuery(message: string): BridgeError {
  return new BridgeError(Code.INVALID_ARGUMENT, Reason.INVALID_REQUEST, message);
}

/**
 * S9: a batch's journal entries do not continue the session's stored journal: the first
 * new index is not the stored last index + 1, or the batch skips or repeats one. With
 * several writers (replicas sharing a store) this is how the loser of a race learns it.
 */
export function journalConflict(sessionId: string, expectedIndex: number, gotIndex: number): BridgeError {
  return new BridgeError(
    Code.ABORTED,
    Reason.JOURNAL_CONFLICT,
    `the journal of session ${sessionId} continues at index ${expectedIndex}, not ${gotIndex}`,
    { metadata: { session_id: sessionId, expected_index: String(expectedIndex) } },
  );
}
