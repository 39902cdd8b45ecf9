import * as grpc from "@grpc/grpc-js";
import type { ErrorInfo, RichStatus } from "../../bridge/errors/rich-status.js";
import { decodeErrorInfo, decodeStatus, ERROR_INFO_TYPE_URL } from "../../bridge/errors/rich-status.js";
import {
  ActRequest,
  type Instruction,
  ItemsRequest,
  type LabItem,
  type LabReply,
  OpenRequest,
} from "../../sdk/gen/sessionbridge/conformance/v1/lab.js";

/** Request metadata: `-bin` keys take Buffers, the others strings. */
export type Meta = Record<string, string | Buffer>;

export interface Answer<T> {
  readonly reply: T;
  readonly headers: grpc.Metadata;
  readonly trailers: grpc.Metadata;
}

export interface Fault {
  readonly code: number;
  readonly message: string;
  readonly status: RichStatus | undefined;
  readonly info: ErrorInfo | undefined;
  readonly headers: grpc.Metadata | undefined;
  readonly trailers: grpc.Metadata;
}

type UnaryMethod = (
  request: unknown,
  metadata: grpc.Metadata,
  options: grpc.CallOptions,
  callback: (error: grpc.ServiceError | null, response?: unknown) => void,
) => grpc.ClientUnaryCall;

function metadata(meta: Meta): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(meta)) md.add(k, v);
  return md;
}

/**
 * Whether a call whose deadline passed ended as such a call may (S15): with the client's
 * own DEADLINE_EXCEEDED, or CANCELLED when grpc-java's server gave up first and reset the
 * stream (RST_STREAM CANCEL), which a client on a loaded machine can read before its own
 * timer fires. Either way the call is over; what the service applied is checked apart.
 */
export function endedAtDeadline(code: number): boolean {
  return code === grpc.status.DEADLINE_EXCEEDED || code === grpc.status.CANCELLED;
}

/** One unary call; resolves with the reply or rejects with a decoded Fault. */
export function unary<T>(
  client: grpc.Client,
  method: string,
  request: unknown,
  meta: Meta = {},
  deadlineMs?: number,
): Promise<Answer<T>> {
  const fn = (client as unknown as Record<string, UnaryMethod>)[method];
  if (fn === undefined) throw new Error(`no method ${method}`);
  const options: grpc.CallOptions = deadlineMs === undefined ? {} : { deadline: Date.now() + deadlineMs };
  return new Promise((resolve, reject) => {
    let headers: grpc.Metadata | undefined;
    let reply: unknown;
    let error: grpc.ServiceError | null = null;
    const call = fn.call(client, request, metadata(meta), options, (e, value) => {
      error = e;
      reply = value;
    });
    call.on("metadata", (h: grpc.Metadata) => {
      headers = h;
    });
    call.on("status", (status: grpc.StatusObject) => {
      if (error !== null) {
        reject(toFault(error, headers, status.metadata));
        return;
      }
      resolve({ reply: reply as T, headers: headers ?? new grpc.Metadata(), trailers: status.metadata });
    });
  });
}

/** A server stream's items and how it ended. */
export function stream(
  client: grpc.Client,
  request: ItemsRequest,
  meta: Meta = {},
): Promise<{ items: LabItem[]; fault: Fault | undefined }> {
  const fn = (
    client as unknown as Record<string, (r: unknown, m: grpc.Metadata) => grpc.ClientReadableStream<LabItem>>
  ).items;
  if (fn === undefined) throw new Error("no method items");
  return new Promise((resolve) => {
    const items: LabItem[] = [];
    const call = fn.call(client, request, metadata(meta));
    let fault: Fault | undefined;
    call.on("data", (item: LabItem) => items.push(item));
    call.on("error", (e: grpc.ServiceError) => {
      fault = toFault(e, undefined, e.metadata ?? new grpc.Metadata());
    });
    call.on("status", () => {
      // "status" comes after "error" and after the last "data".
      setImmediate(() => resolve({ items, fault }));
    });
  });
}

function toFault(e: grpc.ServiceError, headers: grpc.Metadata | undefined, trailers: grpc.Metadata): Fault {
  const raw = trailers.get("grpc-status-details-bin")[0];
  const status = raw instanceof Buffer ? decodeStatus(raw) : undefined;
  const first = status?.details[0];
  const info =
    first !== undefined && first.typeUrl === ERROR_INFO_TYPE_URL ? decodeErrorInfo(first.value) : undefined;
  return { code: e.code, message: e.details, status, info, headers, trailers };
}

/** Runs a call that must fail and returns its fault. */
export async function fault(promise: Promise<unknown>): Promise<Fault> {
  try {
    await promise;
  } catch (error) {
    if ((error as Partial<Fault>).code !== undefined && "trailers" in (error as object))
      return error as Fault;
    throw error;
  }
  throw new Error("the call succeeded but was expected to fail");
}

export function open(tenant: string, account: string, instruction: Partial<Instruction> = {}): OpenRequest {
  return OpenRequest.fromPartial({ tenant, account, instruction });
}

export function act(instruction: Partial<Instruction> = {}): ActRequest {
  return ActRequest.fromPartial({ instruction });
}

/** An ActRequest that reaches its session by correlation values (bridged mode). */
export function actOn(tenant: string, account: string, instruction: Partial<Instruction> = {}): ActRequest {
  return ActRequest.fromPartial({ tenant, account, instruction });
}

export function items(request: Partial<ItemsRequest>): ItemsRequest {
  return ItemsRequest.fromPartial(request);
}

/** The metadata the bridge sends a process for one message of a session (docs/sessions.md). */
export function session(id: string, extra: Meta = {}): Meta {
  return { "sb-session-id": id, ...extra };
}

export type { LabReply };
