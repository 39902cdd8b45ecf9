import { connect, errors, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
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
  if (call.serverStreaming) {
    call.onSent?.();
    return {
      code: 12,
      message: "streams are not carried on NATS",
      details: [],
      headers: {},
      trailers: {},
      messages: [],
    };
  }
  const hdrs = natsHeaders();
  for (const [key, value] of Object.entries(call.metadata)) hdrs.set(key, value);
  hdrs.set("Content-Type", "application/proto");
  const limit = call.timeout === undefined ? NO_DEADLINE_MS : timeoutMs(call.timeout);
  if (call.timeout !== undefined) hdrs.set("sb-timeout-ms", String(limit));
  const subject = `${prefix}.${call.service}.${call.method}`;
  try {
    const pending = connection.request(subject, call.request, { timeout: limit + 50, headers: hdrs });
    // Published in call order on one connection: the order on the wire is the call order.
    call.onSent?.();
    const reply = await (call.signal === undefined ? pending : abortable(pending, call.signal));
    const replyHeaders: Record<string, string> = {};
    for (const key of reply.headers?.keys() ?? []) {
      replyHeaders[key.toLowerCase()] = reply.headers?.values(key).join(",") ?? "";
    }
    const statusBin = replyHeaders["sb-status-bin"];
    if (statusBin !== undefined) {
      const status = decodeStatus(Buffer.from(statusBin, "base64"));
      return {
        code: status.code,
        message: status.message,
        details: status.details,
        headers: replyHeaders,
        trailers: {},
        messages: [],
      };
    }
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
