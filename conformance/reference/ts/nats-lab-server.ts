import { connect, type Msg, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { encodeStatus } from "../../../bridge/errors/rich-status.js";
import {
  ActRequest,
  LabReply,
  OpenRequest,
  PostAck,
} from "../../../sdk/gen/sessionbridge/conformance/v1/lab.js";
import { HTTP_STATUS } from "../../runner/connect-lab-transport.js";
import { isServerStreaming, type LabLogic, labFault } from "./lab-logic.js";
import { serveNatsLabStream } from "./nats-lab-stream.js";

/**
 * The lab services over NATS request-reply on `<prefix>.<package.Service>.<Method>`
 * (docs/nats.md "Processes on NATS"): the deadline from `sb-timeout-ms`, faults in
 * `sb-status-bin` with the services-API headers beside it (S14).
 */
export async function startNatsLabServer(
  logic: LabLogic,
  url: string,
  prefix: string,
): Promise<{ prefix: string; close(): Promise<void> }> {
  const connection: NatsConnection = await connect({ servers: url, name: "sb-lab-ts" });
  const subscription = connection.subscribe(`${prefix}.>`);
  void (async () => {
    for await (const msg of subscription) {
      void serve(connection, logic, prefix, msg).catch(() => undefined);
    }
  })();
  await connection.flush();
  return {
    prefix,
    async close() {
      if (!connection.isClosed()) await connection.drain().catch(() => undefined);
    },
  };
}

async function serve(connection: NatsConnection, logic: LabLogic, prefix: string, msg: Msg): Promise<void> {
  const rest = msg.subject.slice(prefix.length + 1);
  const dot = rest.lastIndexOf(".");
  const service = rest.slice(0, dot);
  const method = rest.slice(dot + 1);
  const metadata: Record<string, string> = {};
  for (const key of msg.headers?.keys() ?? []) metadata[key.toLowerCase()] = msg.headers?.get(key) ?? "";
  const json = (metadata["content-type"] ?? "").includes("json");
  const respondFault = (
    fault: { code: number; message: string; details: readonly { typeUrl: string; value: Uint8Array }[] },
    extra: Readonly<Record<string, string>>,
  ) => {
    const h = natsHeaders();
    for (const [k, v] of Object.entries(extra)) h.set(k, v);
    h.set("Nats-Service-Error-Code", String(HTTP_STATUS[fault.code] ?? 500));
    h.set("Nats-Service-Error", fault.message.replace(/[\r\n]+/g, " "));
    h.set("sb-status-bin", Buffer.from(encodeStatus(fault)).toString("base64"));
    msg.respond(new Uint8Array(), { headers: h });
  };
  if (isServerStreaming(method) && logic.knows(service, method)) {
    const timeout = metadata["sb-timeout-ms"];
    await serveNatsLabStream(
      connection,
      logic,
      {
        service,
        method,
        transport: "nats",
        metadata,
        deadlineAtMs: timeout === undefined ? undefined : Date.now() + Number(timeout),
        payload: msg.data,
      },
      msg,
    );
    return;
  }
  if (!logic.knows(service, method)) {
    respondFault(labFault(12, "UNIMPLEMENTED", `no method ${service}/${method} on NATS`), {});
    return;
  }
  let payload: Uint8Array = msg.data;
  if (json) {
    try {
      const value: unknown = JSON.parse(Buffer.from(payload).toString("utf8"));
      payload =
        method === "Open"
          ? OpenRequest.encode(OpenRequest.fromJSON(value)).finish()
          : ActRequest.encode(ActRequest.fromJSON(value)).finish();
    } catch (error) {
      respondFault(labFault(3, "MALFORMED_MESSAGE", `bad JSON: ${String(error)}`), {});
      return;
    }
  }
  const timeout = metadata["sb-timeout-ms"];
  const deadlineAtMs = timeout === undefined ? undefined : Date.now() + Number(timeout);
  const answer = await logic.handle(
    {
      service,
      method,
      transport: "nats",
      metadata,
      deadlineAtMs,
      signal: new AbortController().signal,
      payload,
    },
    async () => undefined,
  );
  // NATS has no trailers: they travel as headers beside the reply headers.
  const extra = { ...answer.headers, ...answer.trailers };
  if (answer.fault !== undefined) {
    respondFault(answer.fault, extra);
    return;
  }
  const h = natsHeaders();
  for (const [k, v] of Object.entries(extra)) h.set(k, v);
  let out = answer.messages[0] ?? new Uint8Array();
  if (json) {
    const value =
      method === "Post" ? PostAck.toJSON(PostAck.decode(out)) : LabReply.toJSON(LabReply.decode(out));
    out = Buffer.from(JSON.stringify(value));
    h.set("Content-Type", "application/json");
  } else {
    h.set("Content-Type", "application/proto");
  }
  msg.respond(out, { headers: h });
}
