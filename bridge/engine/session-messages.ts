import type { Timestamp } from "../../sdk/gen/google/protobuf/timestamp.js";
import {
  EndReason,
  type ListRequest,
  type Session,
  SessionState,
} from "../../sdk/gen/sessionbridge/v1/session.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type {
  SessionRecord,
  EndReason as StoreEndReason,
  SessionState as StoreState,
} from "../store/records.js";
import { toTimestamp } from "./envelope-codec.js";
import type { ListOptions } from "./sessions-api.js";

/**
 * sessionbridge.v1.SessionService messages ⇄ the engine's records: the one mapping every
 * adapter that serves SessionService (gRPC, Connect, gRPC-Web, the HTTP session API) uses.
 */

const STATE_TO_PROTO: Record<StoreState, SessionState> = {
  active: SessionState.SESSION_STATE_ACTIVE,
  closed: SessionState.SESSION_STATE_CLOSED,
  expired: SessionState.SESSION_STATE_EXPIRED,
};

const STATE_FROM_PROTO = new Map<SessionState, StoreState>([
  [SessionState.SESSION_STATE_ACTIVE, "active"],
  [SessionState.SESSION_STATE_CLOSED, "closed"],
  [SessionState.SESSION_STATE_EXPIRED, "expired"],
]);

const END_REASON_TO_PROTO: Record<StoreEndReason, EndReason> = {
  "end-operation": EndReason.END_REASON_END_OPERATION,
  closed: EndReason.END_REASON_CLOSED,
  "idle-timeout": EndReason.END_REASON_IDLE_TIMEOUT,
  "max-lifetime": EndReason.END_REASON_MAX_LIFETIME,
};

/** A session record as the SessionService message. */
export function sessionToProto(record: SessionRecord): Session {
  return {
    id: record.id,
    service: record.service,
    state: STATE_TO_PROTO[record.state],
    endReason:
      record.endReason === undefined
        ? EndReason.END_REASON_UNSPECIFIED
        : END_REASON_TO_PROTO[record.endReason],
    correlationSet: record.correlationSet ?? "",
    correlation: { ...record.correlation },
    principal: record.principal,
    createdAt: toTimestamp(record.createdAtMs),
    lastActiveAt: toTimestamp(record.lastActiveAtMs),
    endedAt: optionalTimestamp(record.endedAtMs),
    nextSeq: record.nextSeq,
    journalLength: record.journalLength,
  };
}

function optionalTimestamp(ms: number | undefined): Timestamp | undefined {
  return ms === undefined ? undefined : toTimestamp(ms);
}

/** A List request as the engine's options; an unknown state is INVALID_ARGUMENT. */
export function listOptionsOf(request: ListRequest): ListOptions {
  const { service, state, pageSize, pageToken } = request;
  const storeState =
    state === SessionState.SESSION_STATE_UNSPECIFIED ? undefined : STATE_FROM_PROTO.get(state);
  if (state !== SessionState.SESSION_STATE_UNSPECIFIED && storeState === undefined) {
    throw new BridgeError(Code.INVALID_ARGUMENT, Reason.INVALID_REQUEST, `unknown session state ${state}`);
  }
  return {
    pageSize,
    ...(service ? { service } : {}),
    ...(storeState === undefined ? {} : { state: storeState }),
    ...(pageToken ? { pageToken } : {}),
  };
}
