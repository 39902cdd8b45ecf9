import type { Metadata } from "../call/metadata.js";
import type { OperationContract } from "../contracts/contract.js";

/**
 * One message on its way to a process: the payload plus every session fact the process
 * may see. Adapters put the facts on their wire (sb-* metadata, or an Envelope for
 * envelope-native processes) with deliveryHeaders() so every transport agrees.
 */
export interface Delivery {
  readonly operation: OperationContract;
  readonly messageId: string;
  readonly sessionId: string | undefined;
  /** Client sequence number (S7), 0 when unnumbered. */
  readonly seq: number;
  readonly oneWay: boolean;
  readonly principal: string;
  readonly correlation: Readonly<Record<string, string>>;
  /** Custom metadata only: hop-by-hop and sb-* already removed (S13, S15). */
  readonly metadata: Metadata;
  readonly traceparent: string | undefined;
  readonly tracestate: string | undefined;
  /** Absolute deadline; the adapter sends the remaining time (S15). */
  readonly deadlineMs: number | undefined;
  readonly signal: AbortSignal;
  readonly codec: "proto" | "json";
}

export interface UnaryDelivery extends Delivery {
  readonly payload: Uint8Array;
}

export interface StreamDelivery extends Delivery {
  readonly messages: AsyncIterable<Uint8Array>;
}

export interface ProcessReply {
  readonly payload: Uint8Array;
  readonly headers: Metadata;
  readonly trailers: Metadata;
}

/** What the process sent back on a stream; failures are thrown as BridgeError. */
export type ProcessStreamEvent =
  | { readonly type: "headers"; readonly metadata: Metadata }
  | { readonly type: "message"; readonly payload: Uint8Array }
  | { readonly type: "trailers"; readonly metadata: Metadata };

/**
 * A connection to one process, implemented by an outbound adapter. Failures reject with
 * BridgeError carrying the process's code, reason and details unchanged (S14).
 */
export interface ProcessClient {
  unary(delivery: UnaryDelivery): Promise<ProcessReply>;
  stream(delivery: StreamDelivery): AsyncIterable<ProcessStreamEvent>;
  close(): Promise<void>;
}

/** Opens ProcessClients for the location schemes it serves ("grpc", later "http", "nats"). */
export interface ProcessTransport {
  readonly schemes: readonly string[];
  connect(target: ProcessTarget): ProcessClient;
}

export interface ProcessTarget {
  readonly name: string;
  readonly location: URL;
  /** The process implements sessionbridge.v1.Process rather than the contract's services. */
  readonly envelope: boolean;
}
