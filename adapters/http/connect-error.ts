import { Header } from "../../bridge/call/metadata.js";
import { BridgeError, type ErrorDetail } from "../../bridge/errors/bridge-error.js";
import { Code, codeToSnake, parseCode } from "../../bridge/errors/code.js";
import { codeFromHttpStatus } from "../../bridge/errors/http-status.js";
import { Reason } from "../../bridge/errors/reason.js";
import { decodeErrorInfo, ERROR_INFO_TYPE_URL } from "../../bridge/errors/rich-status.js";
import { wireDetails } from "../../bridge/errors/wire-details.js";

/** The Connect protocol's JSON error body (connectrpc.com/docs/protocol, "Error end-stream"). */
export interface ConnectErrorJson {
  readonly code: string;
  readonly message?: string;
  readonly details?: readonly { readonly type: string; readonly value: string }[];
}

const TYPE_URL_PREFIX = "type.googleapis.com/";

/**
 * A fault as the Connect error body (S14): the code in lower snake case, the message, and
 * the details as {type, value} with the protobuf type name and unpadded base64. Details a
 * process declared go out unchanged; the bridge adds its google.rpc.ErrorInfo carrying the
 * reason only when they hold none, as the gRPC adapter does, so both transports carry the
 * same Status.
 */
export function connectErrorJson(error: BridgeError): ConnectErrorJson {
  const code = error.code === Code.OK ? Code.UNKNOWN : error.code;
  const details = wireDetails(error);
  return {
    code: connectCodeName(code),
    ...(error.message === "" ? {} : { message: error.message }),
    details: details.map((d) => ({
      type: d.typeUrl.startsWith(TYPE_URL_PREFIX) ? d.typeUrl.slice(TYPE_URL_PREFIX.length) : d.typeUrl,
      value: Buffer.from(d.value).toString("base64").replace(/=+$/, ""),
    })),
  };
}

/** The Connect protocol's name of a code: lower snake case, with CANCELLED spelled "canceled". */
export function connectCodeName(code: Code): string {
  return code === Code.CANCELLED ? "canceled" : codeToSnake(code);
}

/** A Connect code name ("canceled", "not_found"), or any form parseCode reads. */
export function parseConnectCode(text: string): Code | undefined {
  return text === "canceled" ? Code.CANCELLED : parseCode(text);
}

/** The session facts a fault carries back to its caller (S1), as response headers. */
export function faultSessionHeaders(error: BridgeError): Record<string, string> {
  const out: Record<string, string> = {};
  const sessionId = error.metadata.session_id;
  if (sessionId !== undefined && sessionId !== "") out[Header.sessionId] = sessionId;
  const messageId = error.metadata.message_id;
  if (messageId !== undefined && messageId !== "") out[Header.messageId] = messageId;
  return out;
}

/**
 * A Connect error from a process as a BridgeError (S14): code, message and details
 * unchanged, the reason from the process's ErrorInfo when it sent one. A body that is not
 * a Connect error (a plain handler's or a proxy's page) maps by the HTTP status with
 * gRPC's HTTP-to-code table.
 */
export function fromConnectError(
  status: number,
  body: string,
  headers: BridgeErrorHeaders = {},
): BridgeError {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    parsed = undefined;
  }
  const json = isConnectError(parsed) ? parsed : undefined;
  const code = json === undefined ? undefined : parseConnectCode(json.code);
  if (json === undefined || code === undefined || code === Code.OK) {
    const fallback = codeFromHttpStatus(status);
    const text = body.length > 512 ? `${body.slice(0, 512)}…` : body;
    return new BridgeError(
      fallback,
      defaultReason(fallback),
      `HTTP ${status}${text === "" ? "" : `: ${text}`}`,
      {
        ...headers,
      },
    );
  }
  const details: ErrorDetail[] = [];
  for (const d of json.details ?? []) {
    if (typeof d?.type !== "string" || typeof d.value !== "string") continue;
    details.push({
      typeUrl: d.type.includes("/") ? d.type : `${TYPE_URL_PREFIX}${d.type}`,
      value: new Uint8Array(Buffer.from(d.value, "base64")),
    });
  }
  const info = details.find((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
  let reason: string | undefined;
  let metadata: Readonly<Record<string, string>> = {};
  if (info !== undefined) {
    try {
      const decoded = decodeErrorInfo(info.value);
      reason = decoded.reason || undefined;
      metadata = decoded.metadata;
    } catch {
      // An undecodable ErrorInfo: keep code, message and the raw details.
    }
  }
  // A Connect error is the process's own status: it passes through unchanged (S14).
  return new BridgeError(code, reason ?? defaultReason(code), json.message ?? "", {
    details,
    metadata,
    fromProcess: true,
    ...headers,
  });
}

export interface BridgeErrorHeaders {
  readonly headers?: Readonly<Record<string, readonly string[]>>;
  readonly trailers?: Readonly<Record<string, readonly string[]>>;
}

function isConnectError(value: unknown): value is ConnectErrorJson {
  if (value === null || typeof value !== "object") return false;
  const v = value as Record<string, unknown>;
  return (
    typeof v.code === "string" &&
    (v.message === undefined || typeof v.message === "string") &&
    (v.details === undefined || Array.isArray(v.details))
  );
}

/** The reason of a failure that carried none of its own (as the gRPC adapter). */
function defaultReason(code: Code): string {
  if (code === Code.UNAVAILABLE) return Reason.PROCESS_UNAVAILABLE;
  if (code === Code.DEADLINE_EXCEEDED) return Reason.DEADLINE_EXCEEDED;
  if (code === Code.CANCELLED) return Reason.CANCELLED;
  return Reason.PROCESS_FAULT;
}
