import { setTimeout as sleep } from "node:timers/promises";
import {
  connect,
  createInbox,
  type Msg,
  type NatsConnection,
  headers as natsHeaders,
} from "@nats-io/transport-node";
import { encodeErrorInfo, encodeStatus } from "../../bridge/errors/rich-status.js";
import type { LabOp } from "./lab-process.js";
import { loadLabDefinition } from "./lab-process.js";

/** What the NATS lab process saw of one request. */
export interface NatsLabDelivery {
  readonly subject: string;
  readonly key: string;
  readonly headers: Readonly<Record<string, string>>;
}

/** A detail the process attaches to its faults, to check that details pass through unchanged (S14). */
export const LAB_DETAIL = {
  typeUrl: "type.googleapis.com/test.lab.v1.Op",
  value: new Uint8Array([10, 3, 120, 121, 122]),
};

/**
 * A process of the lab Counter contract reached over NATS (`nats://<prefix>`): it answers
 * `<prefix>.<Method>` with a Result naming the session facts it received, fails with the
 * code an Op asks for (sb-status-bin with reason LAB_FAULT and LAB_DETAIL, as the
 * adapter's own faults travel) and, for fail_code 404 with text "foreign", answers as a
 * foreign services-API service would: only Nats-Service-Error-Code and Nats-Service-Error.
 * An Op with text "garbage" gets a reply that does not decode as a Result.
 */
export interface NatsLabProcess {
  readonly deliveries: NatsLabDelivery[];
  /** Watch: how many messages each key's stream has sent so far. */
  readonly streamed: Map<string, number>;
  /** Watch: keys whose stream the bridge cancelled. */
  readonly cancelled: Set<string>;
  close(): Promise<void>;
}

type Codec = {
  requestDeserialize(bytes: Buffer): LabOp;
  responseSerialize(value: object): Buffer;
};

export async function startNatsLabProcess(url: string, prefix: string): Promise<NatsLabProcess> {
  const connection: NatsConnection = await connect({ servers: url, name: "nats-lab-process" });
  const definition = loadLabDefinition() as unknown as Record<string, Record<string, Codec>>;
  const counter = definition["test.lab.v1.Counter"] ?? {};
  const deliveries: NatsLabDelivery[] = [];
  const logs = new Map<string, string[]>();
  const streamed = new Map<string, number>();
  const streamsCancelled = new Set<string>();
  const subscription = connection.subscribe(`${prefix}.*`, {
    callback: (error, msg) => {
      if (error === null) void answer(msg).catch(() => undefined);
    },
  });

  async function answer(msg: Msg): Promise<void> {
    const method = msg.subject.slice(prefix.length + 1);
    const codec = counter[method];
    if (codec === undefined) return;
    const headers: Record<string, string> = {};
    for (const [key, values] of msg.headers ?? []) headers[key.toLowerCase()] = values.join(", ");
    // A process reached at nats://…?codec=json gets protobuf JSON and answers in kind.
    const json = headers["content-type"] === "application/json";
    const op: LabOp = json ? fromJson(msg.data) : codec.requestDeserialize(Buffer.from(msg.data));
    deliveries.push({ subject: msg.subject, key: op.key ?? "", headers });
    if (method === "Watch") {
      await watch(msg, op, headers, codec);
      return;
    }
    if ((op.delay_ms ?? 0) > 0) await sleep(op.delay_ms);
    const failCode = op.fail_code ?? 0;
    if (failCode !== 0) {
      const hdrs = natsHeaders();
      if (failCode === 404 && op.text === "foreign") {
        hdrs.set("Nats-Service-Error-Code", "404");
        hdrs.set("Nats-Service-Error", "no such thing here");
      } else {
        const message = `lab fault ${failCode}`;
        const details = [
          encodeErrorInfo({ reason: "LAB_FAULT", domain: "lab.test", metadata: { key: op.key ?? "" } }),
          LAB_DETAIL,
        ];
        hdrs.set("Nats-Service-Error-Code", "500");
        hdrs.set("Nats-Service-Error", message);
        hdrs.set(
          "sb-status-bin",
          Buffer.from(encodeStatus({ code: failCode, message, details })).toString("base64"),
        );
        hdrs.set("x-fault-note", "from-the-process");
      }
      msg.respond(new Uint8Array(0), { headers: hdrs });
      return;
    }
    const sessionId = headers["sb-session-id"] ?? "";
    const messageId = headers["sb-message-id"] ?? "";
    const log = logs.get(sessionId) ?? [];
    if (op.text !== undefined && op.text !== "") log.push(op.text);
    logs.set(sessionId, log);
    const metadata: Record<string, string> = {};
    for (const [key, value] of Object.entries(headers)) if (key.startsWith("x-")) metadata[key] = value;
    const timeout = headers["sb-timeout-ms"];
    const result = {
      key: op.key,
      text: op.text,
      session_id: sessionId,
      message_id: messageId,
      seq: headers["sb-seq"] ?? "",
      principal: headers["sb-principal"] ?? "",
      traceparent: headers.traceparent ?? "",
      deadline_ms: timeout === undefined ? -1 : Number(timeout),
      metadata_keys: Object.keys(headers).sort(),
      metadata,
      log,
    };
    const reply =
      method === "Fire"
        ? Buffer.alloc(0)
        : json
          ? Buffer.from(JSON.stringify(toJson(result)))
          : codec.responseSerialize(result);
    const hdrs = natsHeaders();
    if (json) hdrs.set("Content-Type", "application/json");
    hdrs.set("x-process-header", "nats-lab");
    // "odd-headers": headers no gRPC caller could receive as they are.
    if (op.text === "odd-headers") {
      hdrs.set("x-utf8", "naïve ✓");
    }
    // "garbage": a reply that is no Result at all (a truncated length-delimited field).
    msg.respond(op.text === "garbage" ? new Uint8Array([0x12, 0x7f, 0x41]) : reply, { headers: hdrs });
  }

  /**
   * Watch as a NATS process streams (docs/nats.md "Streaming"), written from the document:
   * a head with a control subject, `count` messages, never more than the window ahead of
   * the acks, then the end with a trailer, or, when the Op asks for fail_code, the fault
   * after the messages (a fault mid-stream, S14). A cancel on the control subject stops it.
   */
  async function watch(msg: Msg, op: LabOp, headers: Record<string, string>, codec: Codec): Promise<void> {
    const reply = msg.reply ?? "";
    const key = op.key ?? "";
    const window = Number(headers["sb-stream-window"] ?? "64");
    const control = createInbox();
    let acked = 0;
    let cancelled = false;
    let wake: (() => void) | undefined;
    const sub = connection.subscribe(control, {
      callback: (error, m) => {
        if (error !== null) return;
        if (m.headers?.has("sb-stream-cancel") === true) {
          cancelled = true;
          streamsCancelled.add(key);
        }
        const n = Number(m.headers?.get("sb-stream-ack") ?? "0");
        if (n > acked) acked = n;
        wake?.();
      },
    });
    const send = (data: Uint8Array, fields: Record<string, string>): void => {
      const hdrs = natsHeaders();
      for (const [k, v] of Object.entries(fields)) hdrs.set(k, v);
      connection.publish(reply, data, { headers: hdrs });
    };
    try {
      send(new Uint8Array(0), { "sb-stream": "head", "sb-stream-control": control });
      const base = {
        key: op.key,
        session_id: headers["sb-session-id"] ?? "",
        message_id: headers["sb-message-id"] ?? "",
        principal: headers["sb-principal"] ?? "",
        deadline_ms: headers["sb-timeout-ms"] === undefined ? -1 : Number(headers["sb-timeout-ms"]),
      };
      for (let i = 1; i <= (op.count ?? 0); i++) {
        while (!cancelled && i - 1 - acked >= window) {
          await new Promise<void>((resolve) => {
            wake = resolve;
          });
          wake = undefined;
        }
        if (cancelled) return;
        if ((op.delay_ms ?? 0) > 0) await sleep(op.delay_ms);
        const fields: Record<string, string> = { "sb-stream": "msg", "sb-stream-seq": String(i) };
        if (i === 1) fields["x-process-header"] = "nats-lab";
        send(codec.responseSerialize({ ...base, text: `${op.text ?? ""}#${i}` }), fields);
        streamed.set(key, i);
      }
      const failCode = op.fail_code ?? 0;
      if (failCode !== 0) {
        const message = `lab fault ${failCode}`;
        const details = [
          encodeErrorInfo({ reason: "LAB_FAULT", domain: "lab.test", metadata: { key } }),
          LAB_DETAIL,
        ];
        send(new Uint8Array(0), {
          "sb-stream": "end",
          "Nats-Service-Error-Code": "500",
          "Nats-Service-Error": message,
          "sb-status-bin": Buffer.from(encodeStatus({ code: failCode, message, details })).toString("base64"),
          "x-fault-note": "from-the-process",
        });
        return;
      }
      send(new Uint8Array(0), { "sb-stream": "end", "x-lab-trailer": "watched" });
    } finally {
      sub.unsubscribe();
    }
  }

  return {
    deliveries,
    streamed,
    cancelled: streamsCancelled,
    async close() {
      subscription.unsubscribe();
      await connection.close();
    },
  };
}

/** The proto3 JSON of an Op (lowerCamelCase names) as the loader's object. */
function fromJson(data: Uint8Array): LabOp {
  const value = JSON.parse(Buffer.from(data).toString("utf8")) as Record<string, unknown>;
  const op: LabOp = {};
  if (typeof value.key === "string") op.key = value.key;
  if (typeof value.text === "string") op.text = value.text;
  if (typeof value.delayMs === "number") op.delay_ms = value.delayMs;
  if (typeof value.failCode === "number") op.fail_code = value.failCode;
  return op;
}

/** A Result as proto3 JSON: lowerCamelCase names, int64 as a string. */
function toJson(result: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(result)) {
    const camel = key.replace(/_([a-z])/g, (_, c: string) => c.toUpperCase());
    out[camel] = key === "deadline_ms" ? String(value) : value;
  }
  return out;
}
