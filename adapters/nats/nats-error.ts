import type { MsgHdrs } from "@nats-io/transport-node";
import { Header, type Metadata } from "../../bridge/call/metadata.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code, codeFromNumber } from "../../bridge/errors/code.js";
import { codeFromHttpStatus, httpStatusOf } from "../../bridge/errors/http-status.js";
import { Reason } from "../../bridge/errors/reason.js";
import {
  decodeErrorInfo,
  decodeStatus,
  ERROR_INFO_TYPE_URL,
  encodeStatus,
} from "../../bridge/errors/rich-status.js";
import { wireDetails } from "../../bridge/errors/wire-details.js";
import { lowerKey, NatsHeader, toNatsHeaders } from "./nats-headers.js";

/** Longest message put in Nats-Service-Error: a header line, not a document. */
const MAX_ERROR_TEXT = 1024;

/**
 * The headers of a fault reply (S14, DESIGN §3): the services API's
 * Nats-Service-Error-Code (the HTTP number from the one table) and Nats-Service-Error,
 * plus sb-status-bin with the exact code, reason and details, and the session facts
 * (S1). Headers the process sent with its fault go along, as on success (S15).
 */
export function faultHeaders(error: BridgeError, own: Readonly<Record<string, string>> = {}): MsgHdrs {
  const details = wireDetails(error);
  const fields: Record<string, string> = {
    ...own,
    [NatsHeader.serviceErrorCode]: String(httpStatusOf(error.code)),
    [NatsHeader.serviceError]: oneLine(error.message),
    [NatsHeader.status]: Buffer.from(
      encodeStatus({ code: error.code, message: error.message, details }),
    ).toString("base64"),
    [NatsHeader.reason]: error.reason,
  };
  const sessionId = error.metadata.session_id;
  if (sessionId !== undefined && sessionId !== "") fields[Header.sessionId] = sessionId;
  const messageId = error.metadata.message_id;
  if (messageId !== undefined && messageId !== "") fields[Header.messageId] = messageId;
  return toNatsHeaders({ ...error.headers, ...error.trailers }, fields);
}

/**
 * The fault a NATS reply carries, or undefined for a success. sb-status-bin gives the
 * exact fault back (S14); a foreign service that sent only the services API's headers
 * gets the code of its HTTP number by gRPC's HTTP-to-code table (DESIGN §3).
 */
export function faultOf(metadata: Metadata, passed: Metadata): BridgeError | undefined {
  const raw = metadata[NatsHeader.status]?.[0];
  // Whatever the process replied is its own status: it passes through unchanged (S14).
  const options = { headers: passed, fromProcess: true };
  if (raw !== undefined) {
    try {
      const status = decodeStatus(Buffer.from(raw, "base64"));
      if (status.code !== 0) {
        const info = status.details.find((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
        const decoded = info === undefined ? undefined : decodeErrorInfo(info.value);
        const code = codeFromNumber(status.code);
        return new BridgeError(code, decoded?.reason || defaultReason(code), status.message, {
          ...options,
          details: status.details,
          metadata: decoded?.metadata ?? {},
        });
      }
    } catch {
      // Undecodable: fall back on the services API's headers below.
    }
  }
  const httpText = metadata[lowerKey(NatsHeader.serviceErrorCode)]?.[0];
  if (httpText === undefined) return undefined;
  const code = codeFromHttpStatus(Number(httpText));
  const message = metadata[lowerKey(NatsHeader.serviceError)]?.[0] ?? `process failed with ${httpText}`;
  return new BridgeError(code, defaultReason(code), message, options);
}

function defaultReason(code: Code): string {
  if (code === Code.UNAVAILABLE) return Reason.PROCESS_UNAVAILABLE;
  if (code === Code.DEADLINE_EXCEEDED) return Reason.DEADLINE_EXCEEDED;
  if (code === Code.CANCELLED) return Reason.CANCELLED;
  return Reason.PROCESS_FAULT;
}

/** A header value holds one line of printable text. */
function oneLine(text: string): string {
  const flat = text.replace(/[^\x20-\x7e]+/g, " ");
  return flat.length > MAX_ERROR_TEXT ? `${flat.slice(0, MAX_ERROR_TEXT)}...` : flat;
}
