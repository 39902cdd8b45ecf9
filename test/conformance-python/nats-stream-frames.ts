import {
  createInbox,
  type Msg,
  type NatsConnection,
  headers as natsHeaders,
  type Subscription,
} from "@nats-io/transport-node";
import { Code } from "../../bridge/errors/code.js";
import { decodeErrorInfo, decodeStatus } from "../../bridge/errors/rich-status.js";
import { type DeepPartial, ItemsRequest } from "../../sdk/gen/sessionbridge/conformance/v1/lab.js";

/**
 * A NATS requester of a server stream read frame by frame (docs/nats.md "Streaming"), for
 * the specs of the references that stream over NATS.
 */

/** One raw stream as a NATS requester sees it: every frame on its reply subject, in order. */
export interface RawStream {
  readonly frames: Msg[];
  /** Resolves once `count` frames arrived (or rejects after a generous bound). */
  frame(count: number): Promise<Msg>;
  control(): string;
  ack(consumed: number): void;
  cancel(): void;
  close(): void;
}

export function openStream(
  connection: NatsConnection,
  subject: string,
  request: DeepPartial<ItemsRequest>,
  headers: Readonly<Record<string, string>>,
): RawStream {
  const inbox = createInbox();
  const frames: Msg[] = [];
  const waiters: (() => void)[] = [];
  const sub: Subscription = connection.subscribe(inbox, {
    callback: (error, msg) => {
      if (error !== null) return;
      frames.push(msg);
      for (const wake of waiters.splice(0)) wake();
    },
  });
  const hdrs = natsHeaders();
  for (const [key, value] of Object.entries(headers)) hdrs.set(key, value);
  connection.publish(subject, ItemsRequest.encode(ItemsRequest.fromPartial(request)).finish(), {
    reply: inbox,
    headers: hdrs,
  });
  const control = (): string => frames[0]?.headers?.get("sb-stream-control") ?? "";
  const publishControl = (name: string, value: string): void => {
    const h = natsHeaders();
    h.set(name, value);
    connection.publish(control(), new Uint8Array(0), { headers: h });
  };
  return {
    frames,
    async frame(count) {
      const bound = Date.now() + 30_000;
      while (frames.length < count) {
        if (Date.now() > bound) throw new Error(`${frames.length} frames of ${count} arrived`);
        await new Promise<void>((resolve) => {
          waiters.push(resolve);
          setTimeout(resolve, 200).unref();
        });
      }
      return frames[count - 1] as Msg;
    },
    control,
    ack: (consumed) => publishControl("sb-stream-ack", String(consumed)),
    cancel: () => publishControl("sb-stream-cancel", "1"),
    close: () => sub.unsubscribe(),
  };
}

export const kind = (msg: Msg | undefined): string => msg?.headers?.get("sb-stream") ?? "";

/** The status an end carries in sb-status-bin: code and ErrorInfo reason. */
export function endStatus(end: Msg | undefined): [number, string] {
  const bin = end?.headers?.get("sb-status-bin") ?? "";
  if (bin === "") return [Code.OK, ""];
  const status = decodeStatus(Buffer.from(bin, "base64"));
  const info = status.details[0] === undefined ? undefined : decodeErrorInfo(status.details[0].value);
  return [status.code, info?.reason ?? ""];
}
