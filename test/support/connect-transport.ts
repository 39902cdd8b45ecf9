import { END_STREAM_FLAG, EnvelopeReader, frameEnvelope } from "../../adapters/http/connect-framing.js";
import type { Metadata } from "../../bridge/call/metadata.js";
import type { ErrorDetail } from "../../bridge/errors/bridge-error.js";
import { Code, parseCode } from "../../bridge/errors/code.js";
import { encodeStatus } from "../../bridge/errors/rich-status.js";
import type { LabTransport, RawCall, RawOutcome } from "./lab-transport.js";

interface ConnectErrorBody {
  readonly code?: string;
  readonly message?: string;
  readonly details?: readonly { readonly type: string; readonly value: string }[];
}

/**
 * Lab calls over the bridge's HTTP listener with the Connect protocol and fetch (HTTP/1.1,
 * application/proto): unary as POST, server and client streaming in the Connect streaming
 * format. Faults come back as the google.rpc.Status the other transports carry, so the
 * rule suites compare them the same way. Bidirectional streaming needs HTTP/2 and is not
 * offered over this transport.
 */
export function createConnectTransport(address: string): LabTransport {
  const base = `http://${address}`;
  return {
    name: "connect",
    call: (call) => run(base, call),
    async close() {},
  };
}

async function run(base: string, call: RawCall): Promise<RawOutcome> {
  if (call.kind === "bidi") {
    throw new Error(`the connect lab transport does not carry ${call.kind} calls`);
  }
  const streaming = call.kind === "server_stream" || call.kind === "client_stream";
  const headers: Record<string, string> = {
    ...call.metadata,
    "content-type": streaming ? "application/connect+proto" : "application/proto",
    "connect-protocol-version": "1",
  };
  if (call.timeoutMs !== undefined)
    headers["connect-timeout-ms"] = String(Math.max(0, Math.ceil(call.timeoutMs)));
  // The client enforces its own deadline too, as Connect clients do (S15).
  const signals: AbortSignal[] = [];
  if (call.signal !== undefined) signals.push(call.signal);
  const timeout = call.timeoutMs === undefined ? undefined : AbortSignal.timeout(Math.max(1, call.timeoutMs));
  if (timeout !== undefined) signals.push(timeout);
  const signal = signals.length === 0 ? undefined : AbortSignal.any(signals);
  const request = call.requests[0] ?? new Uint8Array();
  try {
    const response = await fetch(`${base}${call.path}`, {
      method: "POST",
      headers,
      body: streaming ? Buffer.concat(call.requests.map((r) => frameEnvelope(0, r))) : request,
      ...(signal === undefined ? {} : { signal }),
    });
    const { head, trailers } = split(response.headers);
    if (!streaming) {
      const body = new Uint8Array(await response.arrayBuffer());
      if (response.status === 200) {
        call.onMessage(body);
        return { code: Code.OK, message: "", statusDetails: undefined, headers: head, trailers };
      }
      return fault(parseError(new TextDecoder().decode(body), response.status), head, trailers);
    }
    if (response.status !== 200) {
      return fault(parseError(await response.text(), response.status), head, trailers);
    }
    const reader = new EnvelopeReader(64 * 1024 * 1024);
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      for (const envelope of reader.push(Buffer.from(chunk))) {
        if ((envelope.flags & END_STREAM_FLAG) === 0) {
          call.onMessage(new Uint8Array(envelope.data));
          continue;
        }
        const end = JSON.parse(envelope.data.toString("utf8")) as {
          error?: ConnectErrorBody;
          metadata?: Record<string, string[]>;
        };
        const endTrailers: Record<string, readonly string[]> = { ...(end.metadata ?? {}) };
        if (end.error !== undefined)
          return fault(parseError(JSON.stringify(end.error), 200), head, endTrailers);
        return { code: Code.OK, message: "", statusDetails: undefined, headers: head, trailers: endTrailers };
      }
    }
    return {
      code: Code.INTERNAL,
      message: "missing end-stream message",
      statusDetails: undefined,
      headers: head,
      trailers,
    };
  } catch (error) {
    if (timeout?.aborted) return local(Code.DEADLINE_EXCEEDED, "deadline exceeded");
    if (call.signal?.aborted) return local(Code.CANCELLED, "cancelled");
    throw error;
  }
}

function local(code: Code, message: string): RawOutcome {
  return { code, message, statusDetails: undefined, headers: {}, trailers: {} };
}

function split(raw: Headers): { head: Metadata; trailers: Metadata } {
  const head: Record<string, string[]> = {};
  const trailers: Record<string, string[]> = {};
  raw.forEach((value, key) => {
    if (key.startsWith("trailer-")) trailers[key.slice(8)] = [value];
    else head[key] = [value];
  });
  return { head, trailers };
}

interface ParsedError {
  readonly code: Code;
  readonly message: string;
  readonly details: readonly ErrorDetail[];
}

function parseError(text: string, status: number): ParsedError {
  let body: ConnectErrorBody = {};
  try {
    body = JSON.parse(text) as ConnectErrorBody;
  } catch {
    return { code: Code.UNKNOWN, message: `HTTP ${status}: ${text.slice(0, 200)}`, details: [] };
  }
  return {
    code: parseCode(body.code ?? "") ?? Code.UNKNOWN,
    message: body.message ?? "",
    details: (body.details ?? []).map((d) => ({
      typeUrl: `type.googleapis.com/${d.type}`,
      value: new Uint8Array(Buffer.from(d.value, "base64")),
    })),
  };
}

function fault(error: ParsedError, headers: Metadata, trailers: Metadata): RawOutcome {
  return {
    code: error.code,
    message: error.message,
    statusDetails: encodeStatus({ code: error.code, message: error.message, details: error.details }),
    headers,
    trailers,
  };
}
