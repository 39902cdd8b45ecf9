import type { Metadata } from "../../bridge/call/metadata.js";
import { Code } from "../../bridge/errors/code.js";
import { decodeErrorInfo, decodeStatus, ERROR_INFO_TYPE_URL } from "../../bridge/errors/rich-status.js";
import type { DeepPartial } from "../../sdk/gen/sessionbridge/conformance/v1/lab.js";
import {
  ActRequest,
  type Instruction,
  ItemsRequest,
  LabItem,
  LabReply,
  OpenRequest,
} from "../../sdk/gen/sessionbridge/conformance/v1/lab.js";
import type { LabTransport } from "../support/lab-transport.js";

export const LAB = "sessionbridge.conformance.v1.LabService";
export const SEQUENTIAL = "sessionbridge.conformance.v1.SequentialLabService";
export const SINGLE = "sessionbridge.conformance.v1.SingleLabService";
/** Sessionless: no session options, so the bridge passes Ping through without a session. */
export const PING = "sessionbridge.conformance.v1.PingLabService";

export interface CallSettings {
  readonly service?: string;
  /** sb-session-id, as the bridge (or a runner playing it) sends it. */
  readonly session?: string;
  readonly metadata?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  /** Cancels the call when aborted. */
  readonly signal?: AbortSignal;
  readonly tenant?: string;
  readonly account?: string;
}

/** One answer of a lab service: the reply, or the fault with its ErrorInfo reason. */
export interface LabOutcome {
  readonly code: Code;
  readonly message: string;
  readonly reason: string | undefined;
  readonly domain: string | undefined;
  readonly errorMetadata: Readonly<Record<string, string>>;
  /** Every detail of the status, ErrorInfo included. */
  readonly details: readonly { readonly typeUrl: string; readonly value: Uint8Array }[];
  readonly reply: LabReply | undefined;
  readonly items: readonly LabItem[];
  readonly headers: Metadata;
  readonly trailers: Metadata;
}

type Method = "Open" | "Act" | "Peek" | "Post" | "Finish" | "Ping" | "Items";

/** Calls one lab operation through a test transport (gRPC, Connect or NATS). */
export async function labCall(
  transport: LabTransport,
  method: Method,
  instruction: DeepPartial<Instruction> | DeepPartial<ItemsRequest>,
  settings: CallSettings = {},
): Promise<LabOutcome> {
  const correlation = {
    ...(settings.tenant === undefined ? {} : { tenant: settings.tenant }),
    ...(settings.account === undefined ? {} : { account: settings.account }),
  };
  const request =
    method === "Items"
      ? ItemsRequest.encode(
          ItemsRequest.fromPartial({ ...(instruction as DeepPartial<ItemsRequest>), ...correlation }),
        )
      : method === "Open"
        ? OpenRequest.encode(
            OpenRequest.fromPartial({ ...correlation, instruction: instruction as DeepPartial<Instruction> }),
          )
        : ActRequest.encode(
            ActRequest.fromPartial({ ...correlation, instruction: instruction as DeepPartial<Instruction> }),
          );
  const messages: Uint8Array[] = [];
  const metadata: Record<string, string> = { ...(settings.metadata ?? {}) };
  if (settings.session !== undefined) metadata["sb-session-id"] = settings.session;
  const outcome = await transport.call({
    kind: method === "Items" ? "server_stream" : "unary",
    path: `/${settings.service ?? (method === "Ping" ? PING : LAB)}/${method}`,
    requests: [request.finish()],
    metadata,
    timeoutMs: settings.timeoutMs,
    signal: settings.signal,
    onMessage: (bytes) => messages.push(bytes),
  });
  const status = outcome.statusDetails === undefined ? undefined : decodeStatus(outcome.statusDetails);
  const info = status?.details.find((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
  const decoded = info === undefined ? undefined : decodeErrorInfo(info.value);
  const isReply = method !== "Items" && method !== "Post" && outcome.code === Code.OK;
  return {
    code: outcome.code,
    message: outcome.message,
    reason: decoded?.reason,
    domain: decoded?.domain,
    errorMetadata: decoded?.metadata ?? {},
    details: status?.details ?? [],
    reply: isReply ? LabReply.decode(messages[0] ?? new Uint8Array()) : undefined,
    items: method === "Items" ? messages.map((m) => LabItem.decode(m)) : [],
    headers: outcome.headers,
    trailers: outcome.trailers,
  };
}

/** The reply of a call that must succeed; a fault fails the test with its text. */
export async function labReply(
  transport: LabTransport,
  method: Method,
  instruction: DeepPartial<Instruction>,
  settings: CallSettings = {},
): Promise<LabReply> {
  const outcome = await labCall(transport, method, instruction, settings);
  if (outcome.code !== Code.OK) {
    throw new Error(`${method} answered ${outcome.code} ${outcome.reason ?? ""}: ${outcome.message}`);
  }
  return outcome.reply ?? LabReply.fromPartial({});
}
