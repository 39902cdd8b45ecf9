import * as grpc from "@grpc/grpc-js";
import { connect, type Msg, headers as natsHeaders } from "@nats-io/transport-node";
import { encodeStatus } from "../../bridge/errors/rich-status.js";

const identity = (bytes: Buffer): Buffer => bytes;
const DETAILS_KEY = "grpc-status-details-bin";

/** The lab process as NATS services: what the rule suites need to run with NATS outbound. */
export interface NatsRelay {
  close(): Promise<void>;
}

/**
 * Serves `<prefix>.<Service>.<Method>` over NATS, the way a NATS process answers the
 * bridge (docs/nats.md), by calling the lab process's gRPC method with what the request
 * carried: the payload, every header as metadata and sb-timeout-ms as the deadline. The
 * lab process keeps its whole behaviour (holds, logs, faults with details), so the rule
 * suites run unchanged with the bridge's NATS outbound in front of it. Its answer goes
 * back as a NATS reply: the response and its headers and trailers, or a fault in
 * sb-status-bin with the services-API headers.
 */
export async function startNatsRelay(url: string, prefix: string, labPort: number): Promise<NatsRelay> {
  const nc = await connect({ servers: url, name: "lab-relay" });
  const client = new grpc.Client(`127.0.0.1:${labPort}`, grpc.credentials.createInsecure());
  const subscription = nc.subscribe(`${prefix}.*.*`, {
    callback: (error, msg) => {
      if (error === null) relay(msg);
    },
  });

  function relay(msg: Msg): void {
    const [service = "", method = ""] = msg.subject.slice(prefix.length + 1).split(".");
    const md = new grpc.Metadata();
    let timeoutMs: number | undefined;
    for (const [key, values] of msg.headers ?? []) {
      const lower = key.toLowerCase();
      if (lower === "sb-timeout-ms") timeoutMs = Number(values[0]);
      if (lower === "content-type" || lower === "sb-timeout-ms") continue;
      for (const value of values)
        md.add(lower, lower.endsWith("-bin") ? Buffer.from(value, "base64") : value);
    }
    const options: grpc.CallOptions = timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs };
    let headers = new grpc.Metadata();
    let payload: Buffer | undefined;
    const call = client.makeUnaryRequest(
      `/test.lab.v1.${service}/${method}`,
      identity,
      identity,
      Buffer.from(msg.data),
      md,
      options,
      (_error, value?: Buffer) => {
        payload = value;
      },
    );
    call.on("metadata", (m: grpc.Metadata) => {
      headers = m;
    });
    call.on("status", (status: grpc.StatusObject) => {
      const hdrs = natsHeaders();
      for (const source of [headers, status.metadata]) {
        for (const [key, values] of Object.entries(source.toJSON())) {
          if (key === DETAILS_KEY) continue;
          for (const v of values) hdrs.append(key, Buffer.isBuffer(v) ? v.toString("base64") : String(v));
        }
      }
      if (status.code === grpc.status.OK) {
        msg.respond(payload ?? new Uint8Array(0), { headers: hdrs });
        return;
      }
      const details = status.metadata.get(DETAILS_KEY)[0];
      const rich = Buffer.isBuffer(details)
        ? details
        : Buffer.from(encodeStatus({ code: status.code, message: status.details, details: [] }));
      hdrs.set("Nats-Service-Error-Code", "500");
      hdrs.set("Nats-Service-Error", status.details.replace(/[^\x20-\x7e]/g, " "));
      hdrs.set("sb-status-bin", rich.toString("base64"));
      msg.respond(new Uint8Array(0), { headers: hdrs });
    });
  }

  return {
    async close() {
      subscription.unsubscribe();
      client.close();
      await nc.close();
    },
  };
}
