import { decodeEnvelope } from "../../bridge/engine/envelope-codec.js";
import { listOptionsOf, sessionToProto } from "../../bridge/engine/session-messages.js";
import type { SessionsApi } from "../../bridge/engine/sessions-api.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { PrincipalResolver } from "../../bridge/security/principal.js";
import {
  type CloseRequest,
  type CloseResponse,
  type GetRequest,
  type GetResponse,
  type ListRequest,
  type ListResponse,
  SessionServiceService,
} from "../../sdk/gen/sessionbridge/v1/session.js";
import { principalOf } from "./grpc-inbound.js";
import type { GrpcHandler } from "./h2-server.js";
import type { GrpcServerCall } from "./h2-server-call.js";

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
        const page = await api.list(listOptionsOf(request), principal);
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
