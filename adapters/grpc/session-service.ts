import type { ServerUnaryCall, ServerWritableStream, sendUnaryData } from "@grpc/grpc-js";
import { decodeEnvelope, toTimestamp } from "../../bridge/engine/envelope-codec.js";
import type { SessionsApi } from "../../bridge/engine/sessions-api.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type {
  SessionRecord,
  EndReason as StoreEndReason,
  SessionState as StoreState,
} from "../../bridge/store/records.js";
import type { Timestamp } from "../../sdk/gen/google/protobuf/timestamp.js";
import {
  type CloseRequest,
  type CloseResponse,
  EndReason,
  type GetRequest,
  type GetResponse,
  type HistoryRequest,
  type HistoryResponse,
  type ListRequest,
  type ListResponse,
  type Session,
  type SessionServiceServer,
  SessionState,
} from "../../sdk/gen/sessionbridge/v1/session.js";
import { toGrpcStatus } from "./grpc-error.js";
import { ANONYMOUS } from "./grpc-inbound.js";
import { waitDrain } from "./stream-drain.js";

export { SessionServiceService } from "../../sdk/gen/sessionbridge/v1/session.js";

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

/** sessionbridge.v1.SessionService over gRPC, on top of the engine's SessionsApi. */
export function sessionServiceImplementation(api: SessionsApi): SessionServiceServer {
  return {
    get(call: ServerUnaryCall<GetRequest, GetResponse>, callback: sendUnaryData<GetResponse>) {
      respond(callback, async () => ({
        session: sessionToProto(await api.get(requireId(call.request.sessionId), ANONYMOUS)),
      }));
    },
    list(call: ServerUnaryCall<ListRequest, ListResponse>, callback: sendUnaryData<ListResponse>) {
      respond(callback, async () => {
        const { service, state, pageSize, pageToken } = call.request;
        const storeState =
          state === SessionState.SESSION_STATE_UNSPECIFIED ? undefined : STATE_FROM_PROTO.get(state);
        if (state !== SessionState.SESSION_STATE_UNSPECIFIED && storeState === undefined) {
          throw new BridgeError(
            Code.INVALID_ARGUMENT,
            Reason.INVALID_REQUEST,
            `unknown session state ${state}`,
          );
        }
        const page = await api.list(
          {
            pageSize,
            ...(service ? { service } : {}),
            ...(storeState === undefined ? {} : { state: storeState }),
            ...(pageToken ? { pageToken } : {}),
          },
          ANONYMOUS,
        );
        return { sessions: page.sessions.map(sessionToProto), nextPageToken: page.nextPageToken ?? "" };
      });
    },
    history(call: ServerWritableStream<HistoryRequest, HistoryResponse>) {
      void streamHistory(api, call);
    },
    close(call: ServerUnaryCall<CloseRequest, CloseResponse>, callback: sendUnaryData<CloseResponse>) {
      respond(callback, async () => ({
        session: sessionToProto(await api.close(requireId(call.request.sessionId), ANONYMOUS)),
      }));
    },
  };
}

async function streamHistory(api: SessionsApi, call: ServerWritableStream<HistoryRequest, HistoryResponse>) {
  const controller = new AbortController();
  call.on("cancelled", () => controller.abort());
  try {
    const { sessionId, follow, fromIndex } = call.request;
    const entries = api.history(
      requireId(sessionId),
      { follow, fromIndex, signal: controller.signal },
      ANONYMOUS,
    );
    for await (const entry of entries) {
      if (controller.signal.aborted) break;
      const ok = call.write({ entry: { index: entry.index, envelope: decodeEnvelope(entry.envelope) } });
      if (!ok) await waitDrain(call);
    }
    call.end();
  } catch (error) {
    call.emit("error", toGrpcStatus(BridgeError.from(error)));
  }
}

function requireId(id: string): string {
  if (id === "")
    throw new BridgeError(Code.INVALID_ARGUMENT, Reason.INVALID_REQUEST, "session_id is required");
  return id;
}

function respond<T>(callback: sendUnaryData<T>, work: () => Promise<T>): void {
  work().then(
    (value) => callback(null, value),
    (error: unknown) => callback(toGrpcStatus(BridgeError.from(error))),
  );
}
