import {
  connect,
  createInbox,
  type Msg,
  type NatsConnection,
  headers as natsHeaders,
} from "@nats-io/transport-node";
import { Code, codeFromNumber } from "../../bridge/errors/code.js";
import { decodeStatus } from "../../bridge/errors/rich-status.js";
import type { LabTransport, RawCall, RawOutcome } from "./lab-transport.js";

/** Where the transport sends: the bridge's NATS subjects, and gRPC for what NATS does not carry. */
export interface NatsLabTarget {
  readonly url: string;
  /** Inbound subject prefix of the bridge (listeners.nats.prefix). */
  readonly prefix: string;
  /** Request streams and the SessionService go here: NATS serves unary, one-way and server-streaming calls. */
  readonly fallback: LabTransport;
}

/**
 * Lab calls as a NATS client makes them (a reply has one header block: the process's
 * headers and trailers arrive together, so the outcome reports that block as both): a request on `<prefix>.<package.Service>.<Method>`
 * with the metadata as headers and the deadline in sb-timeout-ms (S15); the outcome read
 * back from the reply's headers (sb-status-bin carries the exact fault, S14).
 */
export async function startNatsLabTransport(target: NatsLabTarget): Promise<LabTransport> {
  const connection: NatsConnection = await connect({ servers: target.url, name: "lab-client" });
  return {
    name: "nats",
    call: (call) =>
      call.path.startsWith("/sessionbridge.v1.") || call.kind === "client_stream" || call.kind === "bidi"
        ? target.fallback.call(call)
        : call.kind === "server_stream"
          ? natsStreamCall(connection, target.prefix, call)
          : natsCall(connection, target.prefix, call),
    async close() {
      await connection.close();
      await target.fallback.close();
    },
  };
}

async function natsCall(connection: NatsConnection, prefix: string, call: RawCall): Promise<RawOutcome> {
  const [, service = "", method = ""] = /^\/([^/]+)\/([^/]+)$/.exec(call.path) ?? [];
  const hdrs = natsHeaders();
  for (const [key, value] of Object.entries(call.metadata)) hdrs.set(key, value);
  if (call.timeoutMs !== undefined) hdrs.set("sb-timeout-ms", String(call.timeoutMs));
  try {
    const reply = await connection.request(
      `${prefix}.${service}.${method}`,
      call.requests[0] ?? new Uint8Array(0),
      {
        timeout: call.timeoutMs === undefined ? 30_000 : call.timeoutMs + 5_000,
        headers: hdrs,
      },
    );
    const headers: Record<string, string[]> = {};
    for (const [key, values] of reply.headers ?? []) headers[key.toLowerCase()] = values;
    const status = headers["sb-status-bin"]?.[0];
    delete headers["sb-status-bin"];
    if (status !== undefined) {
      const bytes = new Uint8Array(Buffer.from(status, "base64"));
      const decoded = decodeStatus(bytes);
      return {
        code: codeFromNumber(decoded.code),
        message: decoded.message,
        statusDetails: bytes,
        headers,
        trailers: headers,
      };
    }
    call.onMessage(reply.data);
    return { code: Code.OK, message: "", statusDetails: undefined, headers, trailers: headers };
  } catch (error) {
    const text = error instanceof Error ? `${error.message} ${String(error.cause ?? "")}` : String(error);
    const code = /no responders/i.test(text)
      ? Code.UNAVAILABLE
      : /timeout/i.test(text)
        ? Code.DEADLINE_EXCEEDED
        : Code.UNKNOWN;
    return { code, message: text, statusDetails: undefined, headers: {}, trailers: {} };
  }
}

/** How many messages the lab client lets the bridge send ahead (sb-stream-window). */
export const LAB_STREAM_WINDOW = 8;

/**
 * A server-streaming call as docs/nats.md "Streaming" describes it, written from the
 * document rather than with the adapter's code: a request with a reply inbox, then head,
 * msgs and end on it; an ack on the head's control subject every half window; a cancel
 * there when the caller's signal aborts. Headers come from the head and the first msg,
 * trailers from the end.
 */
async function natsStreamCall(
  connection: NatsConnection,
  prefix: string,
  call: RawCall,
): Promise<RawOutcome> {
  const [, service = "", method = ""] = /^\/([^/]+)\/([^/]+)$/.exec(call.path) ?? [];
  const hdrs = natsHeaders();
  for (const [key, value] of Object.entries(call.metadata)) hdrs.set(key, value);
  if (call.timeoutMs !== undefined) hdrs.set("sb-timeout-ms", String(call.timeoutMs));
  hdrs.set("sb-stream-window", String(LAB_STREAM_WINDOW));
  const inbox = createInbox();
  const sub = connection.subscribe(inbox);
  let control: string | undefined;
  const onAbort = (): void => {
    if (control === undefined) return;
    const cancel = natsHeaders();
    cancel.set("sb-stream-cancel", "1");
    connection.publish(control, new Uint8Array(0), { headers: cancel });
  };
  call.signal?.addEventListener("abort", onAbort, { once: true });
  const timer = setTimeout(
    () => sub.unsubscribe(),
    call.timeoutMs === undefined ? 30_000 : call.timeoutMs + 5_000,
  );
  const headers: Record<string, string[]> = {};
  const read = (msg: Msg): Record<string, string[]> => {
    const out: Record<string, string[]> = {};
    for (const [key, values] of msg.headers ?? []) out[key.toLowerCase()] = values;
    return out;
  };
  try {
    connection.publish(`${prefix}.${service}.${method}`, call.requests[0] ?? new Uint8Array(0), {
      reply: inbox,
      headers: hdrs,
    });
    let consumed = 0;
    for await (const msg of sub) {
      const fields = read(msg);
      const kind = fields["sb-stream"]?.[0];
      if (kind === "head") {
        control = fields["sb-stream-control"]?.[0];
        Object.assign(headers, fields);
        if (call.signal?.aborted === true) onAbort();
        continue;
      }
      if (kind === "msg") {
        if (consumed === 0) Object.assign(headers, fields);
        call.onMessage(msg.data);
        consumed += 1;
        if (control !== undefined && consumed % (LAB_STREAM_WINDOW / 2) === 0) {
          const ack = natsHeaders();
          ack.set("sb-stream-ack", String(consumed));
          connection.publish(control, new Uint8Array(0), { headers: ack });
        }
        continue;
      }
      // The end, or a plain reply: no responders (503) or a fault before the stream began.
      if (msg.headers?.code === 503 && kind === undefined) {
        return {
          code: Code.UNAVAILABLE,
          message: "no responders",
          statusDetails: undefined,
          headers: {},
          trailers: {},
        };
      }
      const trailers = fields;
      const status = trailers["sb-status-bin"]?.[0];
      delete trailers["sb-status-bin"];
      if (consumed === 0) Object.assign(headers, trailers);
      if (status !== undefined) {
        const bytes = new Uint8Array(Buffer.from(status, "base64"));
        const decoded = decodeStatus(bytes);
        return {
          code: codeFromNumber(decoded.code),
          message: decoded.message,
          statusDetails: bytes,
          headers,
          trailers,
        };
      }
      return { code: Code.OK, message: "", statusDetails: undefined, headers, trailers };
    }
    return {
      code: Code.DEADLINE_EXCEEDED,
      message: "no end before the deadline",
      statusDetails: undefined,
      headers,
      trailers: {},
    };
  } finally {
    clearTimeout(timer);
    call.signal?.removeEventListener("abort", onAbort);
    sub.unsubscribe();
  }
}
