import type { UnaryReply } from "../call/call.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { SessionRecord } from "../store/records.js";
import type { EngineContext } from "./engine-context.js";
import { decodeEnvelope } from "./envelope-codec.js";
import type { LiveSession } from "./live-session.js";
import { finalOutcome, outcomeNotRecorded, replayFromEnvelope } from "./replay.js";
import { sessionEnded, sessionNotFound } from "./session-errors.js";

/**
 * Answers from the journal: duplicates of numbered messages (S7) and retries of
 * idempotent calls (S8) get the recorded outcome, with the original session and message
 * ids, and are never delivered a second time. A request still in flight (including one
 * re-queued after a restart, S10) is waited for, never delivered twice.
 */

/** S8: the recorded outcome of an idempotent call, from the record or the journal. */
export async function replayIdempotent(
  ctx: EngineContext,
  sessionId: string | undefined,
  messageId: string,
  outcome: Uint8Array | undefined,
): Promise<UnaryReply> {
  if (outcome !== undefined) return replayFromEnvelope(decodeEnvelope(outcome), sessionId, messageId);
  if (sessionId === undefined) throw outcomeNotRecorded(messageId);
  return replayMessage(ctx, sessionId, messageId);
}

/** The recorded outcome of one request, by its message id (waiting for it if in flight). */
export async function replayMessage(
  ctx: EngineContext,
  sessionId: string,
  messageId: string,
): Promise<UnaryReply> {
  const exchange = await ctx.store.findByMessageId(sessionId, messageId);
  const final = exchange === undefined ? undefined : finalOutcome(exchange);
  if (final === undefined) throw outcomeNotRecorded(messageId);
  return replayFromEnvelope(final, sessionId, messageId);
}

/** S7: a number already taken in a live session: wait for it if in flight, then answer from the journal. */
export async function replaySeq(ctx: EngineContext, session: LiveSession, seq: number): Promise<UnaryReply> {
  const pending = session.pendingSeq(seq);
  if (pending !== undefined) await pending;
  const exchange = await ctx.store.findBySeq(session.id, seq);
  if (exchange === undefined) {
    throw new BridgeError(
      Code.FAILED_PRECONDITION,
      Reason.OUT_OF_SEQUENCE,
      `sb-seq ${seq} was already used in session ${session.id} and its outcome is no longer kept`,
      { metadata: { expected_seq: String(session.nextSeq), session_id: session.id } },
    );
  }
  const final = finalOutcome(exchange);
  const messageId = exchange.request.messageId;
  if (final === undefined) throw outcomeNotRecorded(messageId);
  return replayFromEnvelope(final, session.id, messageId);
}

/** S7 after S12: a retried number of an ended session still gets its recorded outcome. */
export async function replayEndedSeq(
  ctx: EngineContext,
  record: SessionRecord,
  seq: number,
): Promise<UnaryReply> {
  const exchange = await ctx.store.findBySeq(record.id, seq);
  const final = exchange === undefined ? undefined : finalOutcome(exchange);
  if (exchange === undefined || final === undefined) {
    const latest = await ctx.store.getSession(record.id);
    throw latest === undefined ? sessionNotFound(record.id) : sessionEnded(latest);
  }
  return replayFromEnvelope(final, record.id, exchange.request.messageId);
}
