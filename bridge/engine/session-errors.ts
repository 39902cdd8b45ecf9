import { forwardable, type Metadata } from "../call/metadata.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { SessionRecord } from "../store/records.js";

/** S1/S13: unknown, or not the caller's: the same answer, so ids leak nothing. */
export function sessionNotFound(id: string): BridgeError {
  return new BridgeError(Code.NOT_FOUND, Reason.SESSION_NOT_FOUND, `session ${id} not found`);
}

/** S12: the owner learns how its session ended. */
export function sessionEnded(record: Pick<SessionRecord, "id" | "state" | "endReason">): BridgeError {
  const expired = record.state === "expired";
  return new BridgeError(
    Code.NOT_FOUND,
    expired ? Reason.SESSION_EXPIRED : Reason.SESSION_CLOSED,
    `session ${record.id} ${expired ? "expired" : "was closed"} (${record.endReason ?? "ended"})`,
    { metadata: { session_id: record.id, end_reason: record.endReason ?? "" } },
  );
}

/** S12: queued when the session ended, never delivered. */
export function abortedBySessionEnd(id: string): BridgeError {
  return new BridgeError(
    Code.ABORTED,
    Reason.SESSION_ENDED,
    `session ${id} ended before this message was delivered`,
    { metadata: { session_id: id } },
  );
}

/** S4: a non-starter that reaches no live session. */
export function correlationError(operation: string, detail: string): BridgeError {
  return new BridgeError(Code.NOT_FOUND, Reason.CORRELATION_ERROR, `${operation}: ${detail}`);
}

/** S15. */
export function deadlineExceeded(where: string): BridgeError {
  return new BridgeError(Code.DEADLINE_EXCEEDED, Reason.DEADLINE_EXCEEDED, `deadline exceeded ${where}`);
}

/**
 * Adds the session and message ids to an error's metadata, so adapters return
 * sb-session-id and sb-message-id on faults as on success (S1, S7).
 */
export function withSession(
  error: BridgeError,
  sessionId: string | undefined,
  messageId?: string | undefined,
): BridgeError {
  const addSession = sessionId !== undefined && error.metadata.session_id !== sessionId;
  const addMessage = messageId !== undefined && error.metadata.message_id !== messageId;
  if (!addSession && !addMessage) return error;
  return new BridgeError(error.code, error.reason, error.message, {
    metadata: {
      ...error.metadata,
      ...(addSession ? { session_id: sessionId } : {}),
      ...(addMessage ? { message_id: messageId } : {}),
    },
    details: error.details,
    fromProcess: error.fromProcess,
    headers: error.headers,
    trailers: error.trailers,
    cause: error.cause ?? error,
  });
}

/**
 * The fault a caller gets (S14, S15): the process's headers and trailers filtered as on
 * success, and the session and message ids it belongs to (S1, S7).
 */
export function callerFault(
  error: BridgeError,
  sessionId: string | undefined,
  messageId: string,
  trailers: Metadata = forwardable(error.trailers),
): BridgeError {
  return withSession(
    new BridgeError(error.code, error.reason, error.message, {
      metadata: error.metadata,
      details: error.details,
      fromProcess: error.fromProcess,
      headers: forwardable(error.headers),
      trailers,
      cause: error.cause ?? error,
    }),
    sessionId,
    messageId,
  );
}

/** Turns an abort of a wait (caller gone, deadline passed) into the matching fault. */
export function waitAborted(error: unknown, where: string): BridgeError {
  if (error instanceof BridgeError) return error;
  if (error instanceof Error && error.name === "TimeoutError") return deadlineExceeded(where);
  return new BridgeError(Code.CANCELLED, Reason.CANCELLED, `the caller cancelled ${where}`, { cause: error });
}
