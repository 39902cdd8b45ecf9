import * as grpc from "@grpc/grpc-js";
import { connect, createInbox, type Msg, headers as natsHeaders } from "@nats-io/transport-node";
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
    if (msg.headers?.has("sb-stream-window") === true) {
      relayStream(msg, `/test.lab.v1.${service}/${method}`, md, options);
      return;
    }
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
      for (const source of [headers, status.metadata]) appendMetadata(hdrs, source);
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

  /**
   * A server stream (docs/nats.md "Streaming"): head with a control subject, one msg per
   * response of the gRPC stream (paused while the window is full, so the gRPC stream is
   * read no faster than the bridge acks), then the end with the trailers or the fault.
   */
  function relayStream(msg: Msg, path: string, md: grpc.Metadata, options: grpc.CallOptions): void {
    const reply = msg.reply ?? "";
    const window = Number(msg.headers?.get("sb-stream-window") || "64");
    const control = createInbox();
    const call = client.makeServerStreamRequest(path, identity, identity, Buffer.from(msg.data), md, options);
    let sent = 0;
    let acked = 0;
    const sub = nc.subscribe(control, {
      callback: (error, m) => {
        if (error !== null) return;
        if (m.headers?.has("sb-stream-cancel") === true) call.cancel();
        acked = Math.max(acked, Number(m.headers?.get("sb-stream-ack") ?? "0"));
        if (sent - acked < window) call.resume();
      },
    });
    const publish = (data: Uint8Array, hdrs: ReturnType<typeof natsHeaders>): void => {
      nc.publish(reply, data, { headers: hdrs });
    };
    const head = natsHeaders();
    head.set("sb-stream", "head");
    head.set("sb-stream-control", control);
    publish(new Uint8Array(0), head);
    let headers: grpc.Metadata | undefined;
    call.on("metadata", (m: grpc.Metadata) => {
      headers = m;
    });
    call.on("data", (data: Buffer) => {
      const hdrs = natsHeaders();
      if (sent === 0 && headers !== undefined) appendMetadata(hdrs, headers);
      sent += 1;
      hdrs.set("sb-stream", "msg");
      hdrs.set("sb-stream-seq", String(sent));
      publish(data, hdrs);
      if (sent - acked >= window) call.pause();
    });
    call.on("error", () => undefined);
    call.on("status", (status: grpc.StatusObject) => {
      sub.unsubscribe();
      const hdrs = natsHeaders();
      if (sent === 0 && headers !== undefined) appendMetadata(hdrs, headers);
      appendMetadata(hdrs, status.metadata);
      hdrs.set("sb-stream", "end");
      if (status.code !== grpc.status.OK) {
        const details = status.metadata.get(DETAILS_KEY)[0];
        const rich = Buffer.isBuffer(details)
          ? details
          : Buffer.from(encodeStatus({ code: status.code, message: status.details, details: [] }));
        hdrs.set("Nats-Service-Error-Code", "500");
        hdrs.set("Nats-Service-Error", status.details.replace(/[^\x20-\x7e]/g, " "));
        hdrs.set("sb-status-bin", rich.toString("base64"));
      }
      publish(new Uint8Array(0), hdrs);
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

/** gRPC metadata as NATS headers ("-bin" values base64), without the status details. */
function appendMetadata(hdrs: ReturnType<typeof natsHeaders>, source: grpc.Metadata): void {
  for (const [key, values] of Object.entries(source.toJSON())) {
    if (key === DETAILS_KEY) continue;
    for (const v of values) hdrs.append(key, Buffer.isBuffer(v) ? v.toString("base64") : String(v));
  }
}
