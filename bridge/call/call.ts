import type { OperationContract } from "../contracts/contract.js";
import type { Metadata } from "./metadata.js";

/**
 * The one internal form of an inbound call. Each adapter turns its transport's request
 * into this and back; nothing in bridge/ knows which transport a call came from.
 */
export interface CallContext {
  readonly operation: OperationContract;
  /** Caller metadata, as received: the bridge filters it before forwarding (S13, S15). */
  readonly metadata: Metadata;
  /** Absolute deadline in epoch milliseconds (S15), undefined when the caller set none. */
  readonly deadlineMs: number | undefined;
  /**
   * Aborts when the caller goes away. An adapter may build it on first read: the engine
   * reads it only where it must listen (a wait for the session's turn, a passthrough or
   * streaming delivery), so a unary call that never waits never pays for one.
   */
  readonly signal: AbortSignal;
  /**
   * True once the caller went away, as `signal.aborted`; an adapter that builds `signal`
   * on first read sets it, so the engine can ask without building one.
   */
  readonly cancelled?: boolean;
  /** Authenticated principal, or "anonymous" (S13). */
  readonly principal: string;
  /** "proto" for binary protobuf payloads, "json" for protobuf JSON. */
  readonly codec: "proto" | "json";
}

export interface UnaryCall extends CallContext {
  readonly payload: Uint8Array;
}

/** A call whose request side streams (client or bidi streaming), or any streaming call. */
export interface StreamCall extends CallContext {
  /** Request messages in order; exactly one for server-streaming calls. */
  readonly messages: AsyncIterable<Uint8Array>;
}

/** What a call's caller learns besides the payload: the session facts and process metadata. */
export interface ReplyInfo {
  /** The session the call reached (S1); undefined for sessionless services. */
  readonly sessionId: string | undefined;
  /** The bridge-assigned id of the request message. */
  readonly messageId: string | undefined;
  /** Response headers and trailers from the process, already filtered. */
  readonly headers: Metadata;
  readonly trailers: Metadata;
}

export interface UnaryReply extends ReplyInfo {
  readonly payload: Uint8Array;
}

/** Events of a streaming reply, in wire order. Failures are thrown as BridgeError. */
export type StreamEvent =
  | {
      readonly type: "session";
      readonly sessionId: string | undefined;
      readonly messageId: string | undefined;
    }
  | { readonly type: "headers"; readonly metadata: Metadata }
  | { readonly type: "message"; readonly payload: Uint8Array }
  | { readonly type: "trailers"; readonly metadata: Metadata };
