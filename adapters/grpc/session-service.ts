import { decodeEnvelope, toTimestamp } from "../../bridge/engine/envelope-codec.js";
import type { SessionsApi } from "../../bridge/engine/sessions-api.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { PrincipalResolver } from "../../bridge/security/principal.js";
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
  type ListRequest,
  type ListResponse,
  type Session,
  SessionServiceService,
  SessionState,
} from "../../sdk/gen/sessionbridge/v1/session.js";
import { principalOf } from "./grpc-inbound.js";
import type { GrpcHandler } from "./h2-server.js";
import type { GrpcServerCall } from "./h2-server-call.js";

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
export function sessionServiceHandlers(
  api: SessionsApi,
  principals: PrincipalResolver,
): Map<string, GrpcHandler> {
  const d = SessionServiceService;
  const unary = <Req, Res>(
    method: { requestDeserialize(value: Buffer): Req; responseSerialize(value: Res): Buffer },
    work: (request: Req, principal: string) => Promise<Res>,
  ): GrpcHandler =>
    unaryHandler(method, (request, call) => work(request, principalOf(principals, call.metadata)));
  return new Map<string, GrpcHandler>([
    [
      d.get.path,
      unary(
        d.get,
        async (request: GetRequest, principal): Promise<GetResponse> => ({
          session: sessionToProto(await api.get(requireId(request.sessionId), principal)),
        }),
      ),
    ],
    [
      d.list.path,
      unary(d.list, async (request: ListRequest, principal): Promise<ListResponse> => {
        const { service, state, pageSize, pageToken } = request;
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
          principal,
        );
        return { sessions: page.sessions.map(sessionToProto), nextPageToken: page.nextPageToken ?? "" };
      }),
    ],
    [d.history.path, (call) => void streamHistory(api, call, principals)],
    [
      d.close.path,
      unary(
        d.close,
        async (request: CloseRequest, principal): Promise<CloseResponse> => ({
          session: sessionToProto(await api.close(requireId(request.sessionId), principal)),
        }),
      ),
    ],
  ]);
}

async function streamHistory(
  api: SessionsApi,
  call: GrpcServerCall,
  principals: PrincipalResolver,
): Promise<void> {
  try {
    const request = decodeRequest(SessionServiceService.history, await call.message());
    const { sessionId, follow, fromIndex } = request;
    const entries = api.history(
      requireId(sessionId),
      { follow, fromIndex, signal: call.signal },
      principalOf(principals, call.metadata),
    );
    for await (const entry of entries) {
      if (call.finished) break;
      await call.write(
        SessionServiceService.history.responseSerialize({
          entry: { index: entry.index, envelope: decodeEnvelope(entry.envelope) },
        }),
      );
    }
    call.end({});
  } catch (error) {
    call.fail(BridgeError.from(error));
  }
}

function requireId(id: string): string {
  if (id === "")
    throw new BridgeError(Code.INVALID_ARGUMENT, Reason.INVALID_REQUEST, "session_id is required");
  return id;
}

/**
 * The request decoded, or INVALID_ARGUMENT: bytes that are not the request message, or a
 * uint64 beyond 2^53 (the generated code reads those into numbers and refuses what it
 * cannot hold exactly), are the caller's mistake, not the bridge's (S4).
 */
function decodeRequest<Req>(method: { requestDeserialize(value: Buffer): Req }, bytes: Buffer): Req {
  try {
    return method.requestDeserialize(bytes);
  } catch (error) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_REQUEST,
      `cannot decode the request: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
}

/** A unary method: decode the request with the generated codec, run, encode the answer. */
function unaryHandler<Req, Res>(
  method: { requestDeserialize(value: Buffer): Req; responseSerialize(value: Res): Buffer },
  work: (request: Req, call: GrpcServerCall) => Promise<Res>,
): GrpcHandler {
  return (call) =>
    void (async () => {
      try {
        const response = await work(decodeRequest(method, await call.message()), call);
        await call.write(method.responseSerialize(response));
        call.end({});
      } catch (error) {
        call.fail(BridgeError.from(error));
      }
    })();
}
