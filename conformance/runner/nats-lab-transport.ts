import { connect, errors, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { DEFAULT_STREAM_WINDOW, requestStream } from "../../adapters/nats/nats-stream.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { decodeStatus } from "../../bridge/errors/rich-status.js";
import { HTTP_STATUS } from "./connect-lab-transport.js";
import { type LabCall, type LabOutcome, type LabTransport, timeoutMs, unavailable } from "./lab-wire.js";

/** A call with no deadline still needs a timer in NATS request-reply. */
const NO_DEADLINE_MS = 60_000;

/**
 * NATS request-reply on `<prefix>.<package.Service>.<Method>` (docs/nats.md): binary
 * protobuf, the deadline in `sb-timeout-ms`, faults in `sb-status-bin` (S14).
 */
export async function createNatsLabTransport(url: string, prefix: string): Promise<LabTransport> {
  const connection: NatsConnection = await connect({ servers: url, name: "sessionbridge-conformance" });
  return {
    name: "nats",
    call: (call) => natsCall(connection, prefix, call),
    async close() {
      if (!connection.isClosed()) await connection.drain().catch(() => undefined);
    },
  };
}

async function natsCall(connection: NatsConnection, prefix: string, call: LabCall): Promise<LabOutcome> {
  if (call.serverStreaming) return natsStream(connection, prefix, call);
  const { hdrs, limit, subject } = requestOf(prefix, call);
  try {
    const pending = connection.request(subject, call.request, { timeout: limit + 50, headers: hdrs });
    // Published in call order on one connection: the order on the wire is the call order.
    call.onSent?.();
    const reply = await (call.signal === undefined ? pending : abortable(pending, call.signal));
    const replyHeaders = fields(reply);
    const statusBin = replyHeaders["sb-status-bin"];
    if (statusBin !== undefined) return statusOutcome(statusBin, replyHeaders, {}, []);
    const httpCode = replyHeaders["nats-service-error-code"];
    if (httpCode !== undefined) {
      const code = HTTP_STATUS.indexOf(Number(httpCode));
      return {
        code: code <= 0 ? 2 : code,
        message: replyHeaders["nats-service-error"] ?? "",
        details: [],
        headers: replyHeaders,
        trailers: {},
        messages: [],
      };
    }
    return { code: 0, message: "", details: [], headers: replyHeaders, trailers: {}, messages: [reply.data] };
  } catch (error) {
    call.onSent?.();
    if (call.signal?.aborted === true) {
      return {
        code: 1,
        message: "cancelled by the runner",
        details: [],
        headers: {},
        trailers: {},
        messages: [],
      };
    }
    const cause = error instanceof Error ? error.cause : undefined;
    if (error instanceof errors.TimeoutError || cause instanceof errors.TimeoutError) {
      return {
        code: 4,
        message: "no NATS reply before the deadline",
        details: [],
        headers: {},
        trailers: {},
        messages: [],
      };
    }
    return unavailable(
      `NATS request on ${subject} failed: ${error instanceof Error ? error.message : String(error)}`,
    );
  }
}

function abortable<T>(promise: Promise<T>, signal: AbortSignal): Promise<T> {
  promise.catch(() => undefined);
  if (signal.aborted) return Promise.reject(signal.reason);
  return new Promise<T>((resolve, reject) => {
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
    promise.then(resolve, reject);
  });
}

/**
 * A server stream in the framing of docs/nats.md "Streaming": head, msgs (acked within
 * the window), end with the status and trailers; aborting the call sends a cancel.
 */
async function natsStream(connection: NatsConnection, prefix: string, call: LabCall): Promise<LabOutcome> {
  const { hdrs, limit, subject } = requestOf(prefix, call);
  const signal = call.signal ?? new AbortController().signal;
  const messages: Uint8Array[] = [];
  let headers: Record<string, string> = {};
  let sent = false;
  try {
    for await (const frame of requestStream(connection, subject, call.request, {
      headers: hdrs,
      window: DEFAULT_STREAM_WINDOW,
      timeoutMs: limit + 50,
      signal,
      maxPayloadBytes: 64 * 1024 * 1024,
      noResponders: () =>
        new BridgeError(Code.UNAVAILABLE, Reason.PROCESS_UNAVAILABLE, `no responders on ${subject}`),
      timedOut: () =>
        new BridgeError(
          Code.DEADLINE_EXCEEDED,
          Reason.DEADLINE_EXCEEDED,
          "no end of the stream before the deadline",
        ),
    })) {
      if (!sent) {
        sent = true;
        call.onSent?.();
      }
      if (frame.kind === "head") {
        headers = { ...headers, ...fields(frame.msg) };
        continue;
      }
      if (frame.kind === "msg") {
        if (messages.length === 0) headers = { ...headers, ...fields(frame.msg) };
        messages.push(frame.msg.data);
        continue;
      }
      const trailers = fields(frame.msg);
      const statusBin = trailers["sb-status-bin"];
      if (statusBin !== undefined) return statusOutcome(statusBin, headers, trailers, messages);
      return { code: 0, message: "", details: [], headers, trailers, messages };
    }
    return unavailable(`the stream on ${subject} ended without its end message`);
  } catch (error) {
    if (!sent) call.onSent?.();
    if (signal.aborted) {
      return { code: 1, message: "cancelled by the runner", details: [], headers, trailers: {}, messages };
    }
    const fault = BridgeError.from(error);
    return { code: fault.code, message: fault.message, details: [], headers, trailers: {}, messages };
  }
}

/** The request's headers, deadline and subject (docs/nats.md), for unary calls and streams. */
function requestOf(
  prefix: string,
  call: LabCall,
): { hdrs: ReturnType<typeof natsHeaders>; limit: number; subject: string } {
  const hdrs = natsHeaders();
  for (const [key, value] of Object.entries(call.metadata)) hdrs.set(key, value);
  hdrs.set("Content-Type", "application/proto");
  const limit = call.timeout === undefined ? NO_DEADLINE_MS : timeoutMs(call.timeout);
  if (call.timeout !== undefined) hdrs.set("sb-timeout-ms", String(limit));
  return { hdrs, limit, subject: `${prefix}.${call.service}.${call.method}` };
}

/** A message's headers, lower-cased, repeated values joined. */
function fields(msg: {
  headers?: { keys(): string[]; values(k: string): string[] } | undefined;
}): Record<string, string> {
  const out: Record<string, string> = {};
  for (const key of msg.headers?.keys() ?? [])
    out[key.toLowerCase()] = msg.headers?.values(key).join(",") ?? "";
  return out;
}

/** The outcome an `sb-status-bin` fault carries, exactly (S14). */
function statusOutcome(
  statusBin: string,
  headers: Record<string, string>,
  trailers: Record<string, string>,
  messages: Uint8Array[],
): LabOutcome {
  const status = decodeStatus(Buffer.from(statusBin, "base64"));
  return { code: status.code, message: status.message, details: status.details, headers, trailers, messages };
}
