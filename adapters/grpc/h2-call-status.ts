/**
 * How an outbound call on an HTTP/2 stream ends (h2-call.ts): the status its trailers or
 * trailers-only headers carry, and what a stream that closed, reset or lost its connection
 * before any status means for the caller.
 */
import http2 from "node:http2";
import type { Metadata } from "../../bridge/call/metadata.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { codeFromHttpStatus } from "../../bridge/errors/http-status.js";
import { Reason } from "../../bridge/errors/reason.js";
import { fromGrpcStatus } from "./grpc-error.js";
import { decodeGrpcMessage, GRPC_TRANSPORT_FIELDS, metadataOf } from "./grpc-wire-headers.js";
import type { H2Connection } from "./h2-connection.js";

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_ENHANCE_YOUR_CALM, NGHTTP2_INADEQUATE_SECURITY } =
  http2.constants;

/** Trailer fields that are the status itself, not metadata. */
const STATUS_FIELDS: ReadonlySet<string> = new Set(
  [...GRPC_TRANSPORT_FIELDS].filter((key) => key !== "grpc-status-details-bin"),
);

/**
 * The final status, from trailers or a trailers-only response: no error and the trailers
 * for OK, else the error.
 */
export function finalStatus(status: http2.IncomingHttpHeaders | undefined): {
  readonly error: BridgeError | undefined;
  readonly trailers?: Metadata;
} {
  const code = status?.["grpc-status"];
  if (status === undefined || typeof code !== "string") {
    const httpStatus = Number(status?.[":status"] ?? 200);
    return {
      error:
        httpStatus === 200
          ? fromGrpcStatus(Code.INTERNAL, "the process ended the call without a grpc-status", {})
          : httpFailure(httpStatus),
    };
  }
  const number = Number(code);
  if (code === "0") return { error: undefined, trailers: metadataOf(status) };
  // A failure's trailers keep grpc-status-details-bin: fromGrpcStatus reads the status there.
  const trailers = metadataOf(status, STATUS_FIELDS);
  const message = status["grpc-message"];
  return {
    error: fromGrpcStatus(
      /^\d+$/.test(code) ? number : Code.UNKNOWN,
      typeof message === "string" ? decodeGrpcMessage(message) : "",
      trailers,
      undefined,
      // The process answered this status itself: it passes through unchanged (S14).
      true,
    ),
  };
}

export function cancelled(): BridgeError {
  return new BridgeError(Code.CANCELLED, Reason.CANCELLED, "the call was cancelled");
}

export function deadlineExceeded(): BridgeError {
  return new BridgeError(
    Code.DEADLINE_EXCEEDED,
    Reason.DEADLINE_EXCEEDED,
    "the deadline passed before the process answered",
  );
}

/** The process reset the call (RST_STREAM CANCEL) once its deadline had passed (S15). */
export function resetAtDeadline(): BridgeError {
  return new BridgeError(
    Code.DEADLINE_EXCEEDED,
    Reason.DEADLINE_EXCEEDED,
    "the deadline passed before the process answered: the process reset the call (RST_STREAM CANCEL)",
  );
}

export function httpFailure(httpStatus: number): BridgeError {
  return fromGrpcStatus(
    codeFromHttpStatus(httpStatus),
    `the process answered with HTTP status ${httpStatus}`,
    {},
  );
}

/** True when these headers or trailers end the call: a grpc-status, or an HTTP failure. */
export function isFinal(status: http2.IncomingHttpHeaders | undefined): boolean {
  if (status === undefined) return false;
  return typeof status["grpc-status"] === "string" || Number(status[":status"] ?? 200) !== 200;
}

/**
 * UNAVAILABLE when the connection to the process broke under the call (it closed, failed
 * with a socket error such as ECONNRESET, or is going away after GOAWAY): a connection
 * that breaks after the request was sent is UNAVAILABLE in gRPC's status guide, and the
 * caller may retry (DESIGN §7). Undefined while the connection is sound.
 */
export function connectionLost(
  error: (Error & { code?: string }) | undefined,
  connection: H2Connection,
): BridgeError | undefined {
  if (connection.usable && (error === undefined || error.code === "ERR_HTTP2_STREAM_ERROR")) return undefined;
  const why = error?.message ?? "the connection closed";
  return fromGrpcStatus(Code.UNAVAILABLE, `lost the connection to the process: ${why}`, {}, error);
}

/**
 * A stream that closed before its status arrived. A dead connection is UNAVAILABLE (the
 * call may be retried elsewhere); otherwise the RST_STREAM code maps as in gRPC's
 * PROTOCOL-HTTP2.md ("Errors").
 */
export function closedWithoutStatus(
  rstCode: number,
  error: (Error & { code?: string }) | undefined,
  connection: H2Connection,
): BridgeError {
  const lost = connectionLost(error, connection);
  if (lost !== undefined) return lost;
  switch (rstCode) {
    case NGHTTP2_REFUSED_STREAM:
      return fromGrpcStatus(Code.UNAVAILABLE, "the process refused the stream", {});
    case NGHTTP2_CANCEL:
      return fromGrpcStatus(Code.CANCELLED, "the process cancelled the call", {});
    case NGHTTP2_ENHANCE_YOUR_CALM:
      return fromGrpcStatus(Code.RESOURCE_EXHAUSTED, "the process reset the stream: ENHANCE_YOUR_CALM", {});
    case NGHTTP2_INADEQUATE_SECURITY:
      return fromGrpcStatus(Code.PERMISSION_DENIED, "the process reset the stream: INADEQUATE_SECURITY", {});
    default:
      return fromGrpcStatus(Code.INTERNAL, `the process reset the stream with HTTP/2 error ${rstCode}`, {});
  }
}
