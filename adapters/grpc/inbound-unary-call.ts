import type { UnaryCall } from "../../bridge/call/call.js";
import type { Metadata } from "../../bridge/call/metadata.js";
import type { OperationContract } from "../../bridge/contracts/contract.js";
import type { GrpcServerCall } from "./h2-server-call.js";

/**
 * A unary gRPC call as the engine receives it. `signal` and `cancelled` are read through
 * to the stream's call, so the AbortController behind `signal` is built only if the engine
 * reads it (a wait for the session's turn, a passthrough delivery): a unary call that
 * never waits allocates none (bridge/call/call.ts). A class, not an object literal,
 * because the getters then live once on the prototype instead of two closures per call.
 */
export class InboundUnaryCall implements UnaryCall {
  readonly operation: OperationContract;
  readonly metadata: Metadata;
  readonly deadlineMs: number | undefined;
  readonly principal: string;
  readonly codec: "proto" | "json";
  readonly payload: Uint8Array;
  readonly #call: GrpcServerCall;

  constructor(call: GrpcServerCall, operation: OperationContract, principal: string, payload: Uint8Array) {
    this.#call = call;
    this.operation = operation;
    this.metadata = call.metadata;
    this.deadlineMs = call.deadlineMs;
    this.principal = principal;
    this.codec = call.codec;
    this.payload = payload;
  }

  get signal(): AbortSignal {
    return this.#call.signal;
  }

  get cancelled(): boolean {
    return this.#call.cancelled;
  }
}
