import type { Metadata } from "../../bridge/call/metadata.js";
import type { Code } from "../../bridge/errors/code.js";

/** The clients the rule suites run through: gRPC libraries, Connect over HTTP and NATS. */
export type ClientKind = "grpc-js" | "grpc-go" | "connect" | "nats";

export type CallKind = "unary" | "server_stream" | "client_stream" | "bidi";

/** One call as bytes: what every lab transport knows how to carry. */
export interface RawCall {
  readonly kind: CallKind;
  /** Full method path, "/test.lab.v1.Counter/Do". */
  readonly path: string;
  /** Encoded request messages (exactly one for unary and server streaming). */
  readonly requests: readonly Uint8Array[];
  /** Values of "-bin" keys are base64 text. */
  readonly metadata: Readonly<Record<string, string>>;
  /** A real deadline set the client library's own way (S15). */
  readonly timeoutMs?: number | undefined;
  readonly signal?: AbortSignal | undefined;
  /** Called with each response message as it arrives. */
  readonly onMessage: (bytes: Uint8Array) => void;
}

/** How a call ended. Statuses are outcomes, not rejections. */
export interface RawOutcome {
  readonly code: Code;
  readonly message: string;
  /** The google.rpc.Status the server sent (grpc-status-details-bin), if any. */
  readonly statusDetails: Uint8Array | undefined;
  readonly headers: Metadata;
  /** Trailers without grpc-status-details-bin, which is in statusDetails. */
  readonly trailers: Metadata;
}

/**
 * A client library or transport seen from the tests: it carries raw calls and reports
 * their outcome. It rejects only when the transport itself breaks (a client process died).
 */
export interface LabTransport {
  readonly name: ClientKind;
  call(call: RawCall): Promise<RawOutcome>;
  close(): Promise<void>;
}
