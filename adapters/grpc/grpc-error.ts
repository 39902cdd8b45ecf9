import type { OutgoingHttpHeaders } from "node:http2";
import { Header, type Metadata } from "../../bridge/call/metadata.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code, codeFromNumber } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import {
  decodeErrorInfo,
  decodeStatus,
  ERROR_INFO_TYPE_URL,
  encodeStatus,
} from "../../bridge/errors/rich-status.js";
import { wireDetails } from "../../bridge/errors/wire-details.js";
import { encodeGrpcMessage, putMetadata } from "./grpc-wire-headers.js";

const DETAILS_KEY = "grpc-status-details-bin";

/**
 * The trailers that end a call (S14): grpc-status and the percent-encoded grpc-message,
 * the caller-visible metadata, and for a failure a google.rpc.Status in
 * grpc-status-details-bin whose google.rpc.ErrorInfo carries the reason. Details a
 * process declared go out unchanged; the bridge adds its ErrorInfo only when they carry
 * none. A failure tied to a session names it in sb-session-id (S1).
 */
export function statusTrailers(
  code: Code,
  message: string,
  metadata: Metadata,
  error?: BridgeError,
  own: Readonly<Record<string, string>> = {},
): OutgoingHttpHeaders {
  const trailers: OutgoingHttpHeaders = { "grpc-status": String(code) };
  if (message !== "") trailers["grpc-message"] = encodeGrpcMessage(message);
  const extra: Record<string, string> = { ...own };
  if (error !== undefined) {
    const details = wireDetails(error);
    // Binary metadata goes out as unpadded base64, as the gRPC protocol asks of senders.
    extra[DETAILS_KEY] = Buffer.from(encodeStatus({ code: error.code, message: error.message, details }))
      .toString("base64")
      .replace(/=+$/, "");
    // S1, S7: every answer, success or fault, names its session and message.
    const sessionId = error.metadata.session_id;
    if (sessionId !== undefined && sessionId !== "") extra[Header.sessionId] = sessionId;
    const messageId = error.metadata.message_id;
    if (messageId !== undefined && messageId !== "") extra[Header.messageId] = messageId;
  }
  // S14, S15: what the process sent with its fault reaches the caller, as on success.
  putMetadata(trailers, error === undefined ? metadata : { ...error.trailers, ...metadata }, extra);
  return trailers;
}

/**
 * A gRPC failure status as a BridgeError: code and details unchanged, the reason from the
 * ErrorInfo when there is one (S14). `trailers` are in the internal form, so
 * grpc-status-details-bin is base64 text. `fromProcess` marks a status the process itself
 * answered (it then reaches the caller as it came); the bridge's own findings about a call
 * to a process (a broken stream, a lost connection) leave it false.
 */
export function fromGrpcStatus(
  code: number,
  message: string,
  trailers: Metadata,
  cause?: unknown,
  fromProcess = false,
): BridgeError {
  const known = codeFromNumber(code);
  const passed: Record<string, readonly string[]> = {};
  for (const key of Object.keys(trailers)) if (key !== DETAILS_KEY) passed[key] = trailers[key] ?? [];
  const options = { trailers: passed, fromProcess, ...(cause === undefined ? {} : { cause }) };
  const raw = trailers[DETAILS_KEY]?.[0];
  if (raw !== undefined) {
    try {
      const rich = decodeStatus(Buffer.from(raw, "base64"));
      const info = rich.details.find((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
      const decoded = info === undefined ? undefined : decodeErrorInfo(info.value);
      return new BridgeError(known, decoded?.reason || defaultReason(known), rich.message || message, {
        ...options,
        details: rich.details,
        metadata: decoded?.metadata ?? {},
      });
    } catch {
      // Undecodable details: keep code and message, drop what cannot be read.
    }
  }
  return new BridgeError(known, defaultReason(known), message, options);
}

/** The reason of a failure that carried none of its own. */
function defaultReason(code: Code): string {
  if (code === Code.UNAVAILABLE) return Reason.PROCESS_UNAVAILABLE;
  if (code === Code.DEADLINE_EXCEEDED) return Reason.DEADLINE_EXCEEDED;
  // CANCELLED from the process's side keeps PROCESS_FAULT: the reason CANCELLED says the
  // caller left before delivery, which the journal must never claim of a delivered call.
  return Reason.PROCESS_FAULT;
}
