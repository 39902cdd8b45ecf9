import type { CallContext } from "../../bridge/call/call.js";
import { Header, type Metadata } from "../../bridge/call/metadata.js";
import { createJsonCodec, type JsonCodec } from "../../bridge/codec/json-codec.js";
import type { OperationContract, ServiceContract } from "../../bridge/contracts/contract.js";
import type { Bridge } from "../../bridge/engine/bridge-engine.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import type { ListenerContext } from "../../bridge/listener/listener.js";
import type { PrincipalResolver } from "../../bridge/security/principal.js";
import type { GrpcHandler } from "./h2-server.js";
import type { GrpcServerCall } from "./h2-server-call.js";
import { InboundUnaryCall } from "./inbound-unary-call.js";

/** The caller's principal (S13): the bridge resolves it from what the call carried. */
export function principalOf(principals: PrincipalResolver, metadata: Metadata): string {
  const bearer = metadata.authorization?.[0]?.match(/^Bearer\s+(.+)$/i)?.[1];
  return principals.resolve(bearer === undefined ? {} : { bearerToken: bearer });
}

/**
 * Handlers for every method of a contract service, built from its descriptors: no
 * per-contract generated code. Payloads stay the bytes they arrived as (only the fields
 * correlation needs are read, by the engine); each handler turns the gRPC call into the
 * bridge's internal call and the bridge's reply back into gRPC.
 */
export function inboundHandlers(
  listener: ListenerContext,
  service: ServiceContract,
): Map<string, GrpcHandler> {
  const handlers = new Map<string, GrpcHandler>();
  const json = createJsonCodec(listener.contracts, { maxInputBytes: listener.maxPayloadBytes });
  for (const op of service.operations) handlers.set(op.path, handlerFor(listener, op, json));
  return handlers;
}

/**
 * Messages of an application/grpc+json call are transcoded at this edge (DESIGN §7): the
 * engine only ever sees binary protobuf.
 */
interface Transcoding {
  readonly request: (message: Buffer) => Buffer;
  readonly response: (payload: Uint8Array) => Uint8Array;
}

const AS_IS: Transcoding = { request: (m) => m, response: (p) => p };

function transcodingOf(call: GrpcServerCall, op: OperationContract, json: JsonCodec): Transcoding {
  if (call.codec === "proto") return AS_IS;
  return {
    request: (m) => Buffer.from(json.toBinary(op.requestType, m.toString("utf8"))),
    response: (p) => Buffer.from(json.toJson(op.responseType, p), "utf8"),
  };
}

function handlerFor(listener: ListenerContext, op: OperationContract, json: JsonCodec): GrpcHandler {
  const { bridge, principals } = listener;
  if (!op.requestStream && !op.responseStream) {
    return (call) => void unary(bridge, principals, op, call, transcodingOf(call, op, json));
  }
  if (!op.requestStream) {
    return (call) => {
      const codec = transcodingOf(call, op, json);
      void call.message().then(
        (payload) => pump(bridge, principals, op, call, single(codec.request(payload)), codec),
        (error: unknown) => call.fail(BridgeError.from(error)),
      );
    };
  }
  return (call) => {
    const codec = transcodingOf(call, op, json);
    // Protobuf messages go on as the same stream: its compression rides on it (wire-form.ts).
    const messages = codec === AS_IS ? call.messages() : mapMessages(call.messages(), codec);
    void pump(bridge, principals, op, call, messages, codec);
  };
}

async function* mapMessages(messages: AsyncIterable<Buffer>, codec: Transcoding): AsyncGenerator<Buffer> {
  for await (const message of messages) yield codec.request(message);
}

/** The internal form of the call (DESIGN §5); the principal is the bridge's to resolve (S13). */
function context(principals: PrincipalResolver, op: OperationContract, call: GrpcServerCall): CallContext {
  return {
    operation: op,
    metadata: call.metadata,
    deadlineMs: call.deadlineMs,
    signal: call.signal,
    principal: principalOf(principals, call.metadata),
    codec: call.codec,
  };
}

async function unary(
  bridge: Bridge,
  principals: PrincipalResolver,
  op: OperationContract,
  call: GrpcServerCall,
  codec: Transcoding,
): Promise<void> {
  try {
    const payload = codec.request(await call.message());
    // Not spread over context(): that would read `signal`, which this call builds lazily.
    const reply = await bridge.unary(
      new InboundUnaryCall(call, op, principalOf(principals, call.metadata), payload),
    );
    const out = codec.response(reply.payload);
    call.sendHeaders(reply.headers, sessionFields(reply.sessionId, reply.messageId), out);
    await call.write(out);
    call.end(reply.trailers);
  } catch (error) {
    failWithHeaders(call, BridgeError.from(error));
  }
}

/** A fault, with the headers the process sent before it (S14, S15). */
function failWithHeaders(call: GrpcServerCall, error: BridgeError, own: Record<string, string> = {}): void {
  if (Object.keys(error.headers).length > 0) call.sendHeaders(error.headers, own);
  call.fail(error, own);
}

/**
 * Streaming calls: the bridge's events become response headers (with the session facts,
 * S1), messages and the final status. A client-streaming call answers with its one
 * response message the same way.
 */
async function pump(
  bridge: Bridge,
  principals: PrincipalResolver,
  op: OperationContract,
  call: GrpcServerCall,
  messages: AsyncIterable<Buffer>,
  codec: Transcoding,
): Promise<void> {
  let session: Record<string, string> = {};
  try {
    for await (const event of bridge.stream({ ...context(principals, op, call), messages })) {
      if (event.type === "session") session = sessionFields(event.sessionId, event.messageId);
      else if (event.type === "headers") call.sendHeaders(event.metadata, session);
      else if (event.type === "message") {
        call.sendHeaders({}, session);
        await call.write(codec.response(event.payload));
      } else {
        call.sendHeaders({}, session);
        call.end(event.metadata);
        return;
      }
    }
    call.end({});
  } catch (error) {
    // Failing before any header went out: the session facts ride in the trailers.
    failWithHeaders(call, BridgeError.from(error), session);
  }
}

/** The session facts a reply carries (S1), as the bridge's own response fields. */
function sessionFields(sessionId: string | undefined, messageId: string | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  if (sessionId !== undefined) out[Header.sessionId] = sessionId;
  if (messageId !== undefined) out[Header.messageId] = messageId;
  return out;
}

async function* single(message: Buffer): AsyncGenerator<Buffer> {
  yield message;
}
