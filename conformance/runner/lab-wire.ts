/**
 * One call of the lab contract as the runner sees it on any transport: the request bytes,
 * the metadata it sends and what came back. Each transport client (gRPC, Connect, NATS)
 * translates this form at its edge, so the case executor never learns the transport.
 */
export type TransportName = "grpc" | "http" | "nats";

export const TRANSPORTS: readonly TransportName[] = ["grpc", "http", "nats"];

export const LAB_PACKAGE = "sessionbridge.conformance.v1";

export interface LabCall {
  /** Full service name, for example `sessionbridge.conformance.v1.LabService`. */
  readonly service: string;
  readonly method: string;
  readonly request: Uint8Array;
  /** Lower-case keys; `-bin` values are base64 text. */
  readonly metadata: Readonly<Record<string, string>>;
  /** The deadline as a grpc-timeout value (`250m`, `2S`, …), sent in that very unit on gRPC (S15). */
  readonly timeout?: string;
  readonly serverStreaming: boolean;
  /** Aborting cancels the call (S15). */
  readonly signal?: AbortSignal;
  /** Called once the request is written out, so a pipelined sender keeps its order on the wire. */
  readonly onSent?: () => void;
}

export interface WireDetail {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}

export interface LabOutcome {
  /** gRPC code number, 0 for OK. */
  readonly code: number;
  readonly message: string;
  readonly details: readonly WireDetail[];
  /** Response headers, lower-case keys. */
  readonly headers: Readonly<Record<string, string>>;
  /** Response trailers, lower-case keys. */
  readonly trailers: Readonly<Record<string, string>>;
  /** Response messages: one for unary calls, any number for streams. */
  readonly messages: readonly Uint8Array[];
}

/** A client of lab services over one transport, at one address. */
export interface LabTransport {
  readonly name: TransportName;
  call(call: LabCall): Promise<LabOutcome>;
  close(): Promise<void>;
}

/** Milliseconds of a grpc-timeout value, rounded up (S15: `H`, `M`, `S`, `m`, `u`, `n`). */
export function timeoutMs(value: string): number {
  const match = /^(\d{1,8})([HMSmun])$/.exec(value);
  if (match === null) throw new Error(`not a grpc-timeout value: ${JSON.stringify(value)}`);
  const amount = Number(match[1]);
  const perUnit: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 0.001, n: 0.000001 };
  return Math.max(1, Math.ceil(amount * (perUnit[match[2] ?? "m"] ?? 1)));
}

/** A transport-level failure (connection refused, broken stream) as an outcome: UNAVAILABLE. */
export function unavailable(message: string): LabOutcome {
  return { code: 14, message, details: [], headers: {}, trailers: {}, messages: [] };
}
