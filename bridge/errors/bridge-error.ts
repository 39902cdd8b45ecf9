import type { Metadata } from "../call/metadata.js";
import { Code, codeName } from "./code.js";
import { Reason } from "./reason.js";

/** A google.protobuf.Any: error details travel as these, unchanged (S14). */
export interface ErrorDetail {
  readonly typeUrl: string;
  readonly value: Uint8Array;
}

export interface BridgeErrorOptions {
  /** Machine-readable facts, for example { expected_seq: "3" }. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** Details declared by a process, passed through unchanged. */
  readonly details?: readonly ErrorDetail[];
  /**
   * Response headers and trailers a process sent with its fault, already filtered: they
   * reach the caller on faults as they do on success (S14, S15).
   */
  readonly headers?: Metadata;
  readonly trailers?: Metadata;
  /**
   * The status is the process's own answer (S14): adapters send its code, message and
   * details as they came, adding nothing to the details.
   */
  readonly fromProcess?: boolean;
  readonly cause?: unknown;
}

/**
 * The one error type of the bridge (rule S14): a code in gRPC numbering, a
 * machine-readable reason and a message. Adapters translate it to and from their
 * transport; nothing else is thrown across module boundaries.
 */
export class BridgeError extends Error {
  override readonly name = "BridgeError";
  readonly code: Code;
  readonly reason: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly details: readonly ErrorDetail[];
  readonly headers: Metadata;
  readonly trailers: Metadata;
  readonly fromProcess: boolean;

  constructor(code: Code, reason: string, message: string, options: BridgeErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.reason = reason;
    this.metadata = options.metadata ?? {};
    this.details = options.details ?? [];
    this.headers = options.headers ?? NO_METADATA;
    this.trailers = options.trailers ?? NO_METADATA;
    this.fromProcess = options.fromProcess ?? false;
  }

  /** Wraps anything thrown into a BridgeError; BridgeErrors pass through unchanged. */
  static from(error: unknown, code: Code = Code.INTERNAL, reason: string = Reason.INTERNAL): BridgeError {
    if (error instanceof BridgeError) return error;
    if (isAbortError(error)) {
      return new BridgeError(Code.CANCELLED, Reason.CANCELLED, "the call was cancelled", { cause: error });
    }
    const message = error instanceof Error ? error.message : String(error);
    return new BridgeError(code, reason, message, { cause: error });
  }

  override toString(): string {
    return `${codeName(this.code)} (${this.reason}): ${this.message}`;
  }
}

const NO_METADATA: Metadata = Object.freeze({});

function isAbortError(error: unknown): boolean {
  return error instanceof Error && (error.name === "AbortError" || error.name === "TimeoutError");
}
