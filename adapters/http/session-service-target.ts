import type { StreamCall, StreamEvent, UnaryCall, UnaryReply } from "../../bridge/call/call.js";
import type { OperationContract } from "../../bridge/contracts/contract.js";
import { decodeEnvelope } from "../../bridge/engine/envelope-codec.js";
import type { SessionsApi } from "../../bridge/engine/sessions-api.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { SessionState as StoreState } from "../../bridge/store/records.js";
import { SessionServiceService, SessionState } from "../../sdk/gen/sessionbridge/v1/session.js";
import { sessionToProto } from "../grpc/session-service.js";
import type { CallTarget } from "./connect-inbound.js";

const SERVICE = "sessionbridge.v1.SessionService";
const d = SessionServiceService;

const STATE_FROM_PROTO = new Map<SessionState, StoreState>([
  [SessionState.SESSION_STATE_ACTIVE, "active"],
  [SessionState.SESSION_STATE_CLOSED, "closed"],
  [SessionState.SESSION_STATE_EXPIRED, "expired"],
]);

/**
 * sessionbridge.v1.SessionService over Connect and gRPC-Web, as the gRPC listener serves
 * it: the operations (Get, List and History are read-only, so they also answer GET) and
 * a CallTarget that runs them on the engine's SessionsApi, scoped to the caller (S13).
 */
export function sessionServiceOperations(): Map<string, OperationContract> {
  const op = (name: string, shared: boolean, stream: boolean): OperationContract => ({
    path: `/${SERVICE}/${name}`,
    service: SERVICE,
    name,
    requestType: `sessionbridge.v1.${name}Request`,
    responseType: `sessionbridge.v1.${name}Response`,
    requestStream: false,
    responseStream: stream,
    startsSession: false,
    endsSession: false,
    oneWay: false,
    access: shared ? "shared" : "exclusive",
    correlation: undefined,
  });
  return new Map(
    [
      op("Get", true, false),
      op("List", true, false),
      op("History", true, true),
      op("Close", false, false),
    ].map((o) => [o.path, o]),
  );
}

export function sessionServiceTarget(api: SessionsApi): CallTarget {
  return {
    async unary(call: UnaryCall): Promise<UnaryReply> {
      const bytes = Buffer.from(call.payload);
      let payload: Uint8Array;
      switch (call.operation.name) {
        case "Get": {
          const request = d.get.requestDeserialize(bytes);
          payload = d.get.responseSerialize({
            session: sessionToProto(await api.get(requireId(request.sessionId), call.principal)),
          });
          break;
        }
        case "List": {
          const { service, state, pageSize, pageToken } = d.list.requestDeserialize(bytes);
          const storeState = STATE_FROM_PROTO.get(state);
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
            call.principal,
          );
          payload = d.list.responseSerialize({
            sessions: page.sessions.map(sessionToProto),
            nextPageToken: page.nextPageToken ?? "",
          });
          break;
        }
        case "Close": {
          const request = d.close.requestDeserialize(bytes);
          payload = d.close.responseSerialize({
            session: sessionToProto(await api.close(requireId(request.sessionId), call.principal)),
          });
          break;
        }
        default:
          throw new BridgeError(
            Code.UNIMPLEMENTED,
            Reason.UNKNOWN_OPERATION,
            `no operation ${call.operation.path}`,
          );
      }
      return { payload, sessionId: undefined, messageId: undefined, headers: {}, trailers: {} };
    },

    async *stream(call: StreamCall): AsyncGenerator<StreamEvent> {
      let request: Uint8Array | undefined;
      for await (const message of call.messages) request = message;
      const { sessionId, follow, fromIndex } = d.history.requestDeserialize(
        Buffer.from(request ?? new Uint8Array()),
      );
      yield { type: "session", sessionId: undefined, messageId: undefined };
      const entries = api.history(
        requireId(sessionId),
        { follow, fromIndex, signal: call.signal },
        call.principal,
      );
      for await (const entry of entries) {
        yield {
          type: "message",
          payload: d.history.responseSerialize({
            entry: { index: entry.index, envelope: decodeEnvelope(entry.envelope) },
          }),
        };
      }
      yield { type: "trailers", metadata: {} };
    },
  };
}

function requireId(id: string): string {
  if (id === "")
    throw new BridgeError(Code.INVALID_ARGUMENT, Reason.INVALID_REQUEST, "session_id is required");
  return id;
}
