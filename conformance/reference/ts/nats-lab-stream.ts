import { type Msg, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import {
  DEFAULT_STREAM_ACK_TIMEOUT_MS,
  requestedWindow,
  StreamHeader,
  StreamReplier,
} from "../../../adapters/nats/nats-stream.js";
import { encodeStatus } from "../../../bridge/errors/rich-status.js";
import { HTTP_STATUS } from "../../runner/connect-lab-transport.js";
import type { LabLogic, LabRequest } from "./lab-logic.js";

/**
 * LabService.Items over NATS in the framing of docs/nats.md "Streaming": head, one msg
 * per item as the logic emits it (waiting while the requester's window is full), then the
 * end with the trailers or the fault (sb-status-bin beside the services-API headers, S14).
 * A cancel from the requester aborts the call's signal.
 */
export async function serveNatsLabStream(
  connection: NatsConnection,
  logic: LabLogic,
  request: Omit<LabRequest, "signal">,
  msg: Msg,
): Promise<void> {
  const controller = new AbortController();
  const replier = new StreamReplier({
    connection,
    reply: msg.reply ?? "",
    window: requestedWindow(msg.headers?.get(StreamHeader.window) || undefined),
    ackTimeoutMs: DEFAULT_STREAM_ACK_TIMEOUT_MS,
    abort: (reason) => controller.abort(reason),
  });
  replier.head({ "Content-Type": "application/proto" });
  let sent = 0;
  const answer = await logic.handle({ ...request, signal: controller.signal }, async (message) => {
    sent += 1;
    await replier.send(message);
  });
  const end = natsHeaders();
  const extra = sent === 0 ? { ...answer.headers, ...answer.trailers } : answer.trailers;
  for (const [key, value] of Object.entries(extra)) end.set(key, value);
  if (answer.fault !== undefined) {
    end.set("Nats-Service-Error-Code", String(HTTP_STATUS[answer.fault.code] ?? 500));
    end.set("Nats-Service-Error", answer.fault.message.replace(/[\r\n]+/g, " "));
    end.set("sb-status-bin", Buffer.from(encodeStatus(answer.fault)).toString("base64"));
  }
  replier.end(end);
}
