import type {
  Metadata as GrpcMetadata,
  ServerDuplexStream,
  ServerReadableStream,
  ServerUnaryCall,
  ServerWritableStream,
  ServiceDefinition,
  sendUnaryData,
  UntypedServiceImplementation,
} from "@grpc/grpc-js";
import type { CallContext, StreamEvent } from "../../bridge/call/call.js";
import { Header, type Metadata } from "../../bridge/call/metadata.js";
import type { OperationContract, ServiceContract } from "../../bridge/contracts/contract.js";
import type { Bridge } from "../../bridge/engine/bridge-engine.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { toGrpcStatus } from "./grpc-error.js";
import { fromGrpcMetadata, toGrpcMetadata } from "./grpc-metadata.js";
import { waitDrain } from "./stream-drain.js";

/** Payloads pass through as the bytes they arrived as; only correlation fields are read. */
const passBytes = {
  serialize: (value: Buffer): Buffer => value,
  deserialize: (value: Buffer): Buffer => value,
};

export const ANONYMOUS = "anonymous";

/**
 * A grpc-js service definition and implementation for one contract service, built from
 * its descriptors: no per-contract generated code. Each handler turns the grpc-js call
 * into the bridge's internal call and the bridge's reply back into gRPC.
 */
export function inboundService(
  bridge: Bridge,
  service: ServiceContract,
): { definition: ServiceDefinition; implementation: UntypedServiceImplementation } {
  const definition: Record<string, ServiceDefinition[string]> = {};
  const implementation: UntypedServiceImplementation = {};
  for (const op of service.operations) {
    definition[op.name] = {
      path: op.path,
      requestStream: op.requestStream,
      responseStream: op.responseStream,
      requestSerialize: passBytes.serialize,
      requestDeserialize: passBytes.deserialize,
      responseSerialize: passBytes.serialize,
      responseDeserialize: passBytes.deserialize,
      originalName: op.name,
    };
    implementation[op.name] = handlerFor(bridge, op);
  }
  return { definition: definition as ServiceDefinition, implementation };
}

function handlerFor(bridge: Bridge, op: OperationContract): UntypedServiceImplementation[string] {
  if (!op.requestStream && !op.responseStream) {
    return (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) =>
      unary(bridge, op, call, callback);
  }
  if (!op.requestStream) {
    return (call: ServerWritableStream<Buffer, Buffer>) => {
      void pumpToStream(bridge, op, call, single(call.request));
    };
  }
  if (!op.responseStream) {
    return (call: ServerReadableStream<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => {
      void collectUnary(bridge, op, call, requestsOf(call), callback);
    };
  }
  return (call: ServerDuplexStream<Buffer, Buffer>) => {
    void pumpToStream(bridge, op, call, requestsOf(call));
  };
}

type AnyServerCall =
  | ServerUnaryCall<Buffer, Buffer>
  | ServerWritableStream<Buffer, Buffer>
  | ServerReadableStream<Buffer, Buffer>
  | ServerDuplexStream<Buffer, Buffer>;

/**
 * The internal call context of a grpc-js call. Its signal aborts when the client goes
 * away before the answer; `answered()` stops listening, because grpc-js reports every
 * finished call as "cancelled" too, and an abort per successful call is wasted work.
 */
function context(op: OperationContract, call: AnyServerCall): { context: CallContext; answered: () => void } {
  const controller = new AbortController();
  const emitter = call as NodeJS.EventEmitter;
  const onCancelled = (): void => controller.abort();
  emitter.once("cancelled", onCancelled);
  const deadline = call.getDeadline();
  const deadlineMs =
    deadline instanceof Date ? deadline.getTime() : Number.isFinite(deadline) ? deadline : undefined;
  return {
    context: {
      operation: op,
      metadata: fromGrpcMetadata(call.metadata),
      deadlineMs,
      signal: controller.signal,
      principal: ANONYMOUS,
      codec: "proto",
    },
    answered: () => emitter.off("cancelled", onCancelled),
  };
}

function unary(
  bridge: Bridge,
  op: OperationContract,
  call: ServerUnaryCall<Buffer, Buffer>,
  callback: sendUnaryData<Buffer>,
): void {
  let reply: ReturnType<Bridge["unary"]>;
  const { context: ctx, answered } = context(op, call);
  try {
    reply = bridge.unary({ ...ctx, payload: call.request });
  } catch (error) {
    answered();
    callback(toGrpcStatus(BridgeError.from(error)));
    return;
  }
  reply.then(
    (r) => {
      answered();
      call.sendMetadata(toGrpcMetadata(r.headers, sessionHeaders(r.sessionId, r.messageId)));
      callback(
        null,
        Buffer.from(r.payload.buffer, r.payload.byteOffset, r.payload.byteLength),
        toGrpcMetadata(r.trailers),
      );
    },
    (error: unknown) => {
      answered();
      callback(toGrpcStatus(BridgeError.from(error)));
    },
  );
}

/** Server-streaming and bidi: bridge events become headers, messages and the final status. */
async function pumpToStream(
  bridge: Bridge,
  op: OperationContract,
  call: ServerWritableStream<Buffer, Buffer> | ServerDuplexStream<Buffer, Buffer>,
  messages: AsyncIterable<Buffer>,
): Promise<void> {
  const headers = new HeaderState(call);
  try {
    // Streams keep listening to the end: one spurious abort per stream costs nothing.
    const { context: ctx } = context(op, call);
    for await (const event of bridge.stream({ ...ctx, messages })) {
      if (event.type === "session") headers.session(event);
      else if (event.type === "headers") headers.send(event.metadata);
      else if (event.type === "message") {
        headers.send({});
        if (!call.write(Buffer.from(event.payload))) await waitDrain(call);
      } else {
        headers.send({});
        call.end(toGrpcMetadata(event.metadata));
        return;
      }
    }
    call.end();
  } catch (error) {
    call.emit("error", toGrpcStatus(BridgeError.from(error), headers.trailersIfUnsent()));
  }
}

/** Client-streaming: the stream of events collapses to one response message. */
async function collectUnary(
  bridge: Bridge,
  op: OperationContract,
  call: ServerReadableStream<Buffer, Buffer>,
  messages: AsyncIterable<Buffer>,
  callback: sendUnaryData<Buffer>,
): Promise<void> {
  const headers = new HeaderState(call);
  let payload: Uint8Array | undefined;
  let trailers: Metadata = {};
  try {
    // Streams keep listening to the end: one spurious abort per stream costs nothing.
    const { context: ctx } = context(op, call);
    for await (const event of bridge.stream({ ...ctx, messages })) {
      if (event.type === "session") headers.session(event);
      else if (event.type === "headers") headers.send(event.metadata);
      else if (event.type === "message") payload = event.payload;
      else trailers = event.metadata;
    }
    headers.send({});
    callback(null, Buffer.from(payload ?? new Uint8Array(0)), toGrpcMetadata(trailers));
  } catch (error) {
    callback(toGrpcStatus(BridgeError.from(error), headers.trailersIfUnsent()));
  }
}

/**
 * Response headers go out once: the process's headers plus sb-session-id and
 * sb-message-id (S1). If the call fails before they went out, the session facts ride in
 * the trailers instead.
 */
class HeaderState {
  readonly #call: { sendMetadata(md: GrpcMetadata): void };
  #sent = false;
  #sessionId: string | undefined;
  #messageId: string | undefined;

  constructor(call: { sendMetadata(md: GrpcMetadata): void }) {
    this.#call = call;
  }

  session(event: Extract<StreamEvent, { type: "session" }>): void {
    this.#sessionId = event.sessionId;
    this.#messageId = event.messageId;
  }

  send(metadata: Metadata): void {
    if (this.#sent) return;
    this.#sent = true;
    this.#call.sendMetadata(toGrpcMetadata(metadata, sessionHeaders(this.#sessionId, this.#messageId)));
  }

  trailersIfUnsent(): GrpcMetadata | undefined {
    if (this.#sent) return undefined;
    return toGrpcMetadata({}, sessionHeaders(this.#sessionId, this.#messageId));
  }
}

function sessionHeaders(
  sessionId: string | undefined,
  messageId: string | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (sessionId !== undefined) out[Header.sessionId] = sessionId;
  if (messageId !== undefined) out[Header.messageId] = messageId;
  return out;
}

/**
 * The request messages of a streaming call. A plain for-await over a grpc-js call would
 * destroy the whole duplex once the client half-closes, and with it every response not
 * yet written.
 */
function requestsOf(
  call: ServerReadableStream<Buffer, Buffer> | ServerDuplexStream<Buffer, Buffer>,
): AsyncIterable<Buffer> {
  return { [Symbol.asyncIterator]: () => call.iterator({ destroyOnReturn: false }) };
}

async function* single(message: Buffer): AsyncGenerator<Buffer> {
  yield message;
}
