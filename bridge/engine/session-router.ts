import type { CallContext } from "../call/call.js";
import type { CallControl } from "../call/control.js";
import type { OperationContract, ServiceContract } from "../contracts/contract.js";
import { type ExtractedCorrelation, extractCorrelation } from "../contracts/correlation.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { JournalRecord, SessionRecord } from "../store/records.js";
import type { EngineContext } from "./engine-context.js";
import type { LiveSession } from "./live-session.js";
import { correlationError, sessionEnded, sessionNotFound } from "./session-errors.js";

/** Where a call goes: a live session (and its start event, for a new one) or an ended one. */
export type Route =
  | { readonly type: "live"; readonly session: LiveSession; readonly started: JournalRecord | undefined }
  /** S1/S12: the owner named an ended session by id; numbered retries may still replay. */
  | { readonly type: "ended"; readonly record: SessionRecord };

/**
 * What routing reads from a request (S1, S4): the correlation values when the operation
 * has a correlation set. A call that names its session by id needs no alias values
 * (S1: a session is reached "by its id or by correlation values"); those it carries must
 * still match the session. Without an id every alias value is required (S4).
 */
export type RoutingValues =
  | { readonly type: "none" }
  | { readonly type: "full"; readonly correlation: ExtractedCorrelation }
  /** With sb-session-id: the alias values present in the request, by variable. */
  | { readonly type: "partial"; readonly values: Readonly<Record<string, string>> };

export function routingValues(
  op: OperationContract,
  control: CallControl,
  payload: Uint8Array | undefined,
  maxValueBytes: number,
): RoutingValues {
  if (op.correlation === undefined || payload === undefined) return { type: "none" };
  if (control.sessionId === undefined)
    return { type: "full", correlation: extractCorrelation(op, payload, maxValueBytes) };
  try {
    return { type: "full", correlation: extractCorrelation(op, payload, maxValueBytes) };
  } catch (error) {
    if (!(error instanceof BridgeError) || error.reason !== Reason.MISSING_CORRELATION_VALUE) throw error;
  }
  // Some values are absent: read each alias on its own, keeping those present.
  const values: Record<string, string> = {};
  for (const alias of op.correlation.aliases) {
    const single = { ...op, correlation: { set: op.correlation.set, aliases: [alias] } };
    try {
      const one = extractCorrelation(single, payload, maxValueBytes);
      const value = one.values[alias.variable];
      if (value !== undefined) values[alias.variable] = value;
    } catch (error) {
      if (!(error instanceof BridgeError) || error.reason !== Reason.MISSING_CORRELATION_VALUE) throw error;
    }
  }
  return { type: "partial", values };
}

/** The full correlation, when the request carried every alias value. */
export function fullCorrelation(values: RoutingValues): ExtractedCorrelation | undefined {
  return values.type === "full" ? values.correlation : undefined;
}

/**
 * Finds or starts the session a call belongs to (S1–S5). Runs inside the call's admission
 * lane, so two calls for the same session resolve in arrival order.
 */
export async function routeCall(
  ctx: EngineContext,
  call: CallContext,
  control: CallControl,
  service: ServiceContract,
  values: RoutingValues,
): Promise<Route> {
  const op = call.operation;
  if (control.sessionId !== undefined) return routeById(ctx, call, control.sessionId, service, values);

  const correlation = fullCorrelation(values);
  let target: LiveSession | undefined;
  if (correlation !== undefined) target = ctx.registry.byCorrelation(service.name, correlation.key);
  else if (service.execution !== "concurrent") target = ctx.registry.current(service.name);

  // Under SEQUENTIAL an uncorrelated starter opens the next session in line (S6).
  const startsNext = op.startsSession && service.execution === "sequential" && correlation === undefined;
  if (target !== undefined && !startsNext) {
    if (target.principal !== call.principal) {
      if (op.startsSession) throw alreadyExists(op, target.id, false);
      throw correlationError(op.path, "no live session matches the request's correlation values");
    }
    if (op.startsSession && service.startReuse === "reject-duplicate")
      throw alreadyExists(op, target.id, true);
    return { type: "live", session: target, started: undefined };
  }
  if (!op.startsSession) {
    throw correlationError(
      op.path,
      correlation === undefined
        ? `no session of ${service.name} is running`
        : "no live session matches the request's correlation values",
    );
  }
  if (service.execution === "single" && ctx.registry.current(service.name) !== undefined) {
    throw new BridgeError(
      Code.FAILED_PRECONDITION,
      Reason.SINGLE_SESSION_ACTIVE,
      `${service.name} runs a single session and another one is live`,
    );
  }
  if (control.seq !== undefined) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_SEQ,
      "a message that starts a session takes no sb-seq: numbering starts with the next message (S7)",
    );
  }
  const started = ctx.lifecycle.start({
    service,
    operation: op.path,
    principal: call.principal,
    correlationSet: correlation?.set,
    correlation: correlation?.values ?? {},
    correlationKey: correlation?.key,
  });
  // The registry refuses only a key bound meanwhile, which the lane rules out.
  if (started === undefined) throw new BridgeError(Code.ABORTED, Reason.INTERNAL, "correlation race; retry");
  return { type: "live", session: started.session, started: started.started };
}

/** S1: the session named by sb-session-id, visible only to its owner (S13). */
async function routeById(
  ctx: EngineContext,
  call: CallContext,
  sessionId: string,
  service: ServiceContract,
  values: RoutingValues,
): Promise<Route> {
  const op = call.operation;
  const session = ctx.registry.get(sessionId);
  if (session !== undefined && session.principal === call.principal) {
    if (session.service !== service) {
      throw correlationError(op.path, `session ${session.id} belongs to ${session.service.name}`);
    }
    if (!valuesMatch(session, values)) {
      throw correlationError(op.path, `the request's correlation values do not match session ${session.id}`);
    }
    return { type: "live", session, started: undefined };
  }
  const record = await ctx.store.getSession(sessionId);
  if (record === undefined || record.principal !== call.principal || record.service !== service.name) {
    throw sessionNotFound(sessionId);
  }
  if (record.state === "active") {
    // Live in the store but not here: it was not restored (its service left the
    // configuration and came back, or another bridge wrote it). Not served by this engine.
    throw sessionNotFound(sessionId);
  }
  return { type: "ended", record };
}

/** The values a request carries must be the session's own (S5: all variables match exactly). */
function valuesMatch(session: LiveSession, values: RoutingValues): boolean {
  if (values.type === "none") return true;
  if (values.type === "full") {
    return session.correlationKey === undefined || values.correlation.key === session.correlationKey;
  }
  for (const [variable, value] of Object.entries(values.values)) {
    if (session.correlation[variable] !== value) return false;
  }
  return true;
}

/** The answer to a route to an ended session that no recorded outcome answers (S12). */
export function endedError(record: SessionRecord): BridgeError {
  return sessionEnded(record);
}

function alreadyExists(op: OperationContract, sessionId: string, owned: boolean): BridgeError {
  return new BridgeError(
    Code.ALREADY_EXISTS,
    Reason.SESSION_ALREADY_EXISTS,
    `${op.path}: a live session already has these correlation values`,
    owned ? { metadata: { session_id: sessionId } } : {},
  );
}
