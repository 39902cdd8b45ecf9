import http from "node:http";
import {
  type LabCall,
  type LabOutcome,
  type LabTransport,
  timeoutMs,
  unavailable,
  type WireDetail,
} from "./lab-wire.js";

const MAX_BODY_BYTES = 16 * 1024 * 1024;

/** Connect code names in gRPC numbering (DESIGN §3). */
export const CONNECT_CODES: readonly string[] = [
  "ok",
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];

/** The HTTP status of each gRPC code (DESIGN §3). */
export const HTTP_STATUS: readonly number[] = [
  200, 499, 500, 400, 504, 404, 409, 403, 429, 400, 409, 400, 501, 500, 503, 500, 401,
];

/** gRPC's HTTP-to-code table, for answers that are not Connect errors. */
function codeOfHttpStatus(status: number): number {
  const table: Record<number, number> = {
    400: 13,
    401: 16,
    403: 7,
    404: 12,
    429: 14,
    502: 14,
    503: 14,
    504: 14,
  };
  return table[status] ?? 2;
}

/**
 * The Connect protocol over HTTP/1.1: unary calls as `application/proto` POSTs, server
 * streams in the Connect envelope format; the deadline as `Connect-Timeout-Ms` (S15).
 */
export function createConnectLabTransport(baseUrl: string): LabTransport {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 64 });
  return {
    name: "http",
    call: (call) => connectCall(baseUrl, agent, call),
    async close() {
      agent.destroy();
    },
  };
}

function connectCall(baseUrl: string, agent: http.Agent, call: LabCall): Promise<LabOutcome> {
  const url = new URL(`${baseUrl.replace(/\/$/, "")}/${call.service}/${call.method}`);
  const headers: http.OutgoingHttpHeaders = {
    "connect-protocol-version": "1",
    "content-type": call.serverStreaming ? "application/connect+proto" : "application/proto",
    ...call.metadata,
  };
  if (call.timeout !== undefined) headers["connect-timeout-ms"] = String(timeoutMs(call.timeout));
  let body: Buffer = Buffer.from(call.request);
  if (call.serverStreaming) {
    const framed = Buffer.alloc(5 + body.length);
    framed.writeUInt32BE(body.length, 1);
    framed.set(body, 5);
    body = framed;
  }
  headers["content-length"] = String(body.length);
  return new Promise((resolve) => {
    const request = http.request(
      {
        host: url.hostname,
        port: url.port,
        path: url.pathname,
        method: "POST",
        headers,
        agent,
        ...(call.signal === undefined ? {} : { signal: call.signal }),
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        response.on("data", (chunk: Buffer) => {
          size += chunk.length;
          if (size > MAX_BODY_BYTES) {
            response.destroy();
            return;
          }
          chunks.push(chunk);
        });
        response.on("error", () => undefined);
        response.on("close", () => {
          if (call.signal?.aborted === true) return;
          if (!response.complete) {
            resolve(unavailable("the HTTP response broke off"));
            return;
          }
          resolve(readResponse(response, Buffer.concat(chunks), call.serverStreaming));
        });
      },
    );
    request.on("finish", () => call.onSent?.());
    request.on("error", (error) => {
      call.onSent?.();
      if (call.signal?.aborted === true) {
        resolve({
          code: 1,
          message: "cancelled by the runner",
          details: [],
          headers: {},
          trailers: {},
          messages: [],
        });
        return;
      }
      resolve(unavailable(`HTTP request failed: ${error.message}`));
    });
    request.end(body);
  });
}

function readResponse(response: http.IncomingMessage, body: Buffer, streaming: boolean): LabOutcome {
  const headers: Record<string, string> = {};
  const trailers: Record<string, string> = {};
  for (const [key, value] of Object.entries(response.headers)) {
    if (value === undefined) continue;
    const text = Array.isArray(value) ? value.join(",") : value;
    if (!streaming && key.startsWith("trailer-")) trailers[key.slice("trailer-".length)] = text;
    else headers[key] = text;
  }
  const status = response.statusCode ?? 0;
  if (status !== 200) {
    const error = parseConnectError(body.toString("utf8"));
    if (error === undefined) {
      return {
        code: codeOfHttpStatus(status),
        message: `HTTP ${status}`,
        details: [],
        headers,
        trailers,
        messages: [],
      };
    }
    return { ...error, headers, trailers, messages: [] };
  }
  if (!streaming) return { code: 0, message: "", details: [], headers, trailers, messages: [body] };
  const messages: Uint8Array[] = [];
  let at = 0;
  while (at + 5 <= body.length) {
    const flags = body.readUInt8(at);
    const length = body.readUInt32BE(at + 1);
    if (at + 5 + length > body.length) break;
    const payload = body.subarray(at + 5, at + 5 + length);
    at += 5 + length;
    if ((flags & 0x02) === 0) {
      messages.push(payload);
      continue;
    }
    const end = JSON.parse(payload.toString("utf8") || "{}") as {
      error?: unknown;
      metadata?: Record<string, string[]>;
    };
    for (const [key, values] of Object.entries(end.metadata ?? {}))
      trailers[key.toLowerCase()] = values.join(",");
    const error = end.error === undefined ? undefined : connectErrorOf(end.error);
    return error === undefined
      ? { code: 0, message: "", details: [], headers, trailers, messages }
      : { ...error, headers, trailers, messages };
  }
  return { ...unavailable("the Connect stream ended without its end-stream message"), headers, messages };
}

function parseConnectError(text: string): Pick<LabOutcome, "code" | "message" | "details"> | undefined {
  try {
    return connectErrorOf(JSON.parse(text));
  } catch {
    return undefined;
  }
}

function connectErrorOf(value: unknown): Pick<LabOutcome, "code" | "message" | "details"> | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  const error = value as { code?: unknown; message?: unknown; details?: unknown };
  if (typeof error.code !== "string") return undefined;
  const code = CONNECT_CODES.indexOf(error.code);
  const details: WireDetail[] = [];
  if (Array.isArray(error.details)) {
    for (const d of error.details as { type?: unknown; value?: unknown }[]) {
      if (typeof d.type !== "string" || typeof d.value !== "string") continue;
      details.push({ typeUrl: `type.googleapis.com/${d.type}`, value: Buffer.from(d.value, "base64") });
    }
  }
  return {
    code: code < 0 ? 2 : code,
    message: typeof error.message === "string" ? error.message : "",
    details,
  };
}
