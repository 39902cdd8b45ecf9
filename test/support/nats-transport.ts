import { connect, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { Code, codeFromNumber } from "../../bridge/errors/code.js";
import { decodeStatus } from "../../bridge/errors/rich-status.js";
import type { LabTransport, RawCall, RawOutcome } from "./lab-transport.js";

/** Where the transport sends: the bridge's NATS subjects, and gRPC for what NATS does not carry. */
export interface NatsLabTarget {
  readonly url: string;
  /** Inbound subject prefix of the bridge (listeners.nats.prefix). */
  readonly prefix: string;
  /** Streams and the SessionService go here: NATS serves unary and one-way contract calls only. */
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
      call.kind === "unary" && !call.path.startsWith("/sessionbridge.v1.")
        ? natsCall(connection, target.prefix, call)
        : target.fallback.call(call),
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
