import * as grpc from "@grpc/grpc-js";
import { type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { DEFAULT_STREAM_WINDOW, requestStream } from "../../adapters/nats/nats-stream.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code as BridgeCode } from "../../bridge/errors/code.js";
import { codeFromHttpStatus } from "../../bridge/errors/http-status.js";
import { Reason } from "../../bridge/errors/reason.js";
import { decodeErrorInfo, decodeStatus, ERROR_INFO_TYPE_URL } from "../../bridge/errors/rich-status.js";
import { Any } from "../../sdk/gen/google/protobuf/any.js";
import {
  ActRequest,
  type DeepPartial,
  ItemsRequest,
  LabItem,
  LabReply,
  LabServiceService,
  OpenRequest,
  PingLabServiceService,
  PostAck,
  SequentialLabServiceService,
  SingleLabServiceService,
} from "../../sdk/gen/sessionbridge/conformance/v1/lab.js";
import type { CallFailure } from "../support/grpc-call.js";

export type Wire = "grpc" | "http" | "nats";
export const WIRES: readonly Wire[] = ["grpc", "http", "nats"];

export const PKG = "sessionbridge.conformance.v1";
export type LabServiceName = "LabService" | "SequentialLabService" | "SingleLabService" | "PingLabService";
export type Method = "Open" | "Act" | "Peek" | "Post" | "Finish" | "Ping";

/** The request of a unary operation: OpenRequest for Open, ActRequest otherwise. */
export type LabRequest = DeepPartial<ActRequest> | DeepPartial<OpenRequest>;

/** A fault as any transport carried it (S14). */
export interface WireFault {
  readonly code: number;
  readonly message: string;
  /** ErrorInfo reason, "" without one. */
  readonly reason: string;
  readonly domain: string;
  readonly errorMetadata: Readonly<Record<string, string>>;
  /** Every detail after the ErrorInfo, as Any. */
  readonly details: readonly Any[];
}

export interface WireOutcome {
  readonly reply?: LabReply;
  readonly fault?: WireFault;
  readonly headers: Readonly<Record<string, string>>;
  readonly trailers: Readonly<Record<string, string>>;
}

export interface CallOptions {
  /** Request headers: session facts (sb-*) and custom metadata. */
  readonly headers?: Readonly<Record<string, string>>;
  readonly timeoutMs?: number;
  /** gRPC and HTTP: cancels the call when it aborts. */
  readonly signal?: AbortSignal;
  /** HTTP and NATS only: protobuf JSON instead of binary. */
  readonly json?: boolean;
  /** NATS streams only: sb-stream-window, the items the server may send ahead of the acks. */
  readonly window?: number;
}

/** One client of the lab contract over one transport, speaking each transport's own form. */
export interface LabWire {
  readonly wire: Wire;
  call(
    service: LabServiceName,
    method: Method,
    request: LabRequest,
    options?: CallOptions,
  ): Promise<WireOutcome>;
  /** Server streaming: the items, then the stream's fault if it ended with one. */
  items(
    request: DeepPartial<ItemsRequest>,
    options?: CallOptions,
  ): Promise<{ items: LabItem[]; fault?: WireFault; headers: Record<string, string> }>;
  close(): Promise<void>;
}

const DEFINITIONS = {
  LabService: LabServiceService,
  SequentialLabService: SequentialLabServiceService,
  SingleLabService: SingleLabServiceService,
  PingLabService: PingLabServiceService,
} as const;

function encodeRequest(method: Method, request: LabRequest): Uint8Array {
  return method === "Open"
    ? OpenRequest.encode(OpenRequest.fromPartial(request as DeepPartial<OpenRequest>)).finish()
    : ActRequest.encode(ActRequest.fromPartial(request as DeepPartial<ActRequest>)).finish();
}

function toJson(method: Method, request: LabRequest): unknown {
  return method === "Open"
    ? OpenRequest.toJSON(OpenRequest.fromPartial(request as DeepPartial<OpenRequest>))
    : ActRequest.toJSON(ActRequest.fromPartial(request as DeepPartial<ActRequest>));
}

function decodeReply(method: Method, bytes: Uint8Array): LabReply {
  // PostAck is empty: a one-way answer reads as an empty LabReply.
  if (method === "Post") {
    PostAck.decode(bytes);
    return LabReply.fromPartial({});
  }
  return LabReply.decode(bytes);
}

/** A google.rpc.Status as a WireFault: the first ErrorInfo gives the reason. */
export function faultOfStatus(bytes: Uint8Array): WireFault {
  const status = decodeStatus(bytes);
  const infoIndex = status.details.findIndex((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
  const info =
    infoIndex < 0 ? undefined : decodeErrorInfo((status.details[infoIndex] as { value: Uint8Array }).value);
  return {
    code: status.code,
    message: status.message,
    reason: info?.reason ?? "",
    domain: info?.domain ?? "",
    errorMetadata: info?.metadata ?? {},
    details: status.details
      .filter((_, i) => i !== infoIndex)
      .map((d) => Any.fromPartial({ typeUrl: d.typeUrl, value: Buffer.from(d.value) })),
  };
}

function metadataRecord(md: grpc.Metadata | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(md?.getMap() ?? {}))
    out[k] = Buffer.isBuffer(v) ? v.toString("base64") : v;
  return out;
}

/** gRPC: grpc-js clients built from the generated service definitions. */
export function grpcWire(address: string): LabWire {
  const clients = new Map<LabServiceName, grpc.Client>();
  const client = (service: LabServiceName): grpc.Client => {
    let c = clients.get(service);
    if (c === undefined) {
      const ctor = grpc.makeGenericClientConstructor(DEFINITIONS[service], service);
      c = new ctor(address, grpc.credentials.createInsecure());
      clients.set(service, c);
    }
    return c;
  };
  const options = (o: CallOptions | undefined): grpc.CallOptions =>
    o?.timeoutMs === undefined ? {} : { deadline: Date.now() + o.timeoutMs };
  const metadataOf = (o: CallOptions | undefined): grpc.Metadata => {
    const md = new grpc.Metadata();
    for (const [k, v] of Object.entries(o?.headers ?? {}))
      md.set(k, k.endsWith("-bin") ? Buffer.from(v, "base64") : v);
    return md;
  };
  const faultOf = (error: CallFailure): WireFault => {
    const raw = error.metadata?.get("grpc-status-details-bin")[0];
    if (Buffer.isBuffer(raw)) return faultOfStatus(raw);
    return {
      code: error.code,
      message: error.details,
      reason: "",
      domain: "",
      errorMetadata: {},
      details: [],
    };
  };
  return {
    wire: "grpc",
    async call(service, method, request, o) {
      const c = client(service);
      const path = `/${PKG}.${service}/${method}`;
      const run = (): Promise<{ response: Uint8Array; headers: grpc.Metadata; trailers: grpc.Metadata }> =>
        new Promise((resolve, reject) => {
          let headers: grpc.Metadata | undefined;
          let response: Uint8Array | undefined;
          let error: grpc.ServiceError | null = null;
          const call = c.makeUnaryRequest(
            path,
            (b: Uint8Array) => Buffer.from(b),
            (b: Buffer) => new Uint8Array(b),
            encodeRequest(method, request),
            metadataOf(o),
            options(o),
            (e, value) => {
              error = e;
              response = value;
            },
          );
          call.on("metadata", (h) => {
            headers = h;
          });
          o?.signal?.addEventListener("abort", () => call.cancel(), { once: true });
          call.on("status", (status) => {
            if (error !== null) reject(Object.assign(error, { headers }));
            else
              resolve({
                response: response ?? new Uint8Array(),
                headers: headers ?? new grpc.Metadata(),
                trailers: status.metadata,
              });
          });
        });
      try {
        const out = await run();
        return {
          reply: decodeReply(method, out.response),
          headers: metadataRecord(out.headers),
          trailers: metadataRecord(out.trailers),
        };
      } catch (error) {
        const e = error as CallFailure;
        return {
          fault: faultOf(e),
          headers: metadataRecord(e.headers),
          trailers: metadataRecord(e.metadata),
        };
      }
    },
    async items(request, o) {
      const c = client("LabService");
      const stream = c.makeServerStreamRequest(
        `/${PKG}.LabService/Items`,
        (r: ItemsRequest) => Buffer.from(ItemsRequest.encode(r).finish()),
        (b: Buffer) => LabItem.decode(b),
        ItemsRequest.fromPartial(request),
        metadataOf(o),
        options(o),
      );
      const items: LabItem[] = [];
      let headers: Record<string, string> = {};
      stream.on("metadata", (h) => {
        headers = metadataRecord(h);
      });
      try {
        for await (const item of stream) items.push(item as LabItem);
        return { items, headers };
      } catch (error) {
        return { items, fault: faultOf(error as CallFailure), headers };
      }
    },
    async close() {
      for (const c of clients.values()) c.close();
    },
  };
}

/** Connect error JSON (S14) as a WireFault. */
function faultOfConnect(body: unknown): WireFault {
  const json = body as {
    code?: string;
    message?: string;
    details?: { type: string; value: string }[];
  };
  const status = {
    code: CONNECT_CODES.indexOf(json.code ?? "unknown"),
    message: json.message ?? "",
  };
  const details = (json.details ?? []).map((d) =>
    Any.fromPartial({ typeUrl: `type.googleapis.com/${d.type}`, value: Buffer.from(d.value, "base64") }),
  );
  const infoIndex = details.findIndex((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
  const info = infoIndex < 0 ? undefined : decodeErrorInfo((details[infoIndex] as Any).value);
  return {
    ...status,
    reason: info?.reason ?? "",
    domain: info?.domain ?? "",
    errorMetadata: info?.metadata ?? {},
    details: details.filter((_, i) => i !== infoIndex),
  };
}

/**
 * A non-200 answer: Connect error JSON, or (an unknown path answered by the HTTP router,
 * for example) a code synthesized from the HTTP status, as the Connect protocol says.
 */
function faultOfHttp(response: Response, body: Uint8Array): WireFault {
  if ((response.headers.get("content-type") ?? "").startsWith("application/json")) {
    return faultOfConnect(JSON.parse(Buffer.from(body).toString("utf8")));
  }
  return {
    code: codeFromHttpStatus(response.status),
    message: Buffer.from(body).toString("utf8"),
    reason: "",
    domain: "",
    errorMetadata: {},
    details: [],
  };
}

const CONNECT_CODES = [
  "ok",
  "canceled",
  "unknown",
  "invalid_argument",
  "deadline_exceeded",
  "not_found",
  "already_exists",
  "permission_denied",
  "resource_exhausted",
  "failed_precondition",
  "aborted",
  "out_of_range",
  "unimplemented",
  "internal",
  "unavailable",
  "data_loss",
  "unauthenticated",
];

function httpHeaders(o: CallOptions | undefined, contentType: string): Record<string, string> {
  const h: Record<string, string> = {
    "content-type": contentType,
    "connect-protocol-version": "1",
    ...o?.headers,
  };
  if (o?.timeoutMs !== undefined) h["connect-timeout-ms"] = String(o.timeoutMs);
  return h;
}

function split(headers: Headers): { headers: Record<string, string>; trailers: Record<string, string> } {
  const out = { headers: {} as Record<string, string>, trailers: {} as Record<string, string> };
  headers.forEach((value, key) => {
    if (key.startsWith("trailer-")) out.trailers[key.slice(8)] = value;
    else out.headers[key] = value;
  });
  return out;
}

/** HTTP: the Connect protocol with fetch, unary binary or JSON and server streaming. */
export function httpWire(baseUrl: string): LabWire {
  return {
    wire: "http",
    async call(service, method, request, o) {
      const json = o?.json === true;
      const response = await fetch(`${baseUrl}/${PKG}.${service}/${method}`, {
        method: "POST",
        headers: httpHeaders(o, json ? "application/json" : "application/proto"),
        body: json ? JSON.stringify(toJson(method, request)) : encodeRequest(method, request),
        ...(o?.signal === undefined ? {} : { signal: o.signal }),
      });
      const body = new Uint8Array(await response.arrayBuffer());
      const { headers, trailers } = split(response.headers);
      if (response.status !== 200) return { fault: faultOfHttp(response, body), headers, trailers };
      const reply = json
        ? method === "Post"
          ? LabReply.fromPartial({})
          : LabReply.fromJSON(JSON.parse(Buffer.from(body).toString("utf8")))
        : decodeReply(method, body);
      return { reply, headers, trailers };
    },
    async items(request, o) {
      const message = ItemsRequest.encode(ItemsRequest.fromPartial(request)).finish();
      const envelope = Buffer.alloc(5 + message.length);
      envelope.writeUInt32BE(message.length, 1);
      Buffer.from(message).copy(envelope, 5);
      const response = await fetch(`${baseUrl}/${PKG}.LabService/Items`, {
        method: "POST",
        headers: httpHeaders(o, "application/connect+proto"),
        body: envelope,
      });
      const { headers } = split(response.headers);
      let body = Buffer.from(await response.arrayBuffer());
      if (response.status !== 200) return { items: [], fault: faultOfHttp(response, body), headers };
      const items: LabItem[] = [];
      while (body.length >= 5) {
        const flags = body.readUInt8(0);
        const size = body.readUInt32BE(1);
        const data = body.subarray(5, 5 + size);
        body = body.subarray(5 + size);
        if ((flags & 0x02) !== 0) {
          const end = JSON.parse(data.toString("utf8")) as { error?: unknown };
          return end.error === undefined
            ? { items, headers }
            : { items, fault: faultOfConnect(end.error), headers };
        }
        items.push(LabItem.decode(data));
      }
      throw new Error("the stream ended without its end message");
    },
    async close() {},
  };
}

/**
 * NATS request-reply needs a timer even where the call has no deadline. It only bounds a
 * service that never answers: a call with a deadline is answered by the service itself
 * (DEADLINE_EXCEEDED, S15), which on a loaded machine may take seconds past it, so the
 * timer leaves a wide margin rather than race that answer.
 */
function natsRequestTimeoutMs(o: CallOptions | undefined): number {
  return o?.timeoutMs === undefined ? 60_000 : o.timeoutMs + 30_000;
}

/** NATS: request-reply on `<prefix>.<package.Service>.<Method>` (docs/nats.md). */
export function natsWire(connection: NatsConnection, prefix: string): LabWire {
  return {
    wire: "nats",
    async call(service, method, request, o) {
      const h = natsHeaders();
      for (const [k, v] of Object.entries(o?.headers ?? {})) h.set(k, v);
      const json = o?.json === true;
      if (json) h.set("Content-Type", "application/json");
      if (o?.timeoutMs !== undefined) h.set("sb-timeout-ms", String(o.timeoutMs));
      const payload = json
        ? Buffer.from(JSON.stringify(toJson(method, request)))
        : encodeRequest(method, request);
      const msg = await connection.request(`${prefix}.${PKG}.${service}.${method}`, payload, {
        headers: h,
        // The service answers DEADLINE_EXCEEDED itself; give it the time to say so.
        timeout: natsRequestTimeoutMs(o),
      });
      const headers: Record<string, string> = {};
      for (const [k, values] of msg.headers ?? []) headers[k.toLowerCase()] = values.join(", ");
      const status = headers["sb-status-bin"];
      if (status !== undefined)
        return { fault: faultOfStatus(Buffer.from(status, "base64")), headers, trailers: {} };
      const reply = json
        ? method === "Post"
          ? LabReply.fromPartial({})
          : LabReply.fromJSON(JSON.parse(Buffer.from(msg.data).toString("utf8")))
        : decodeReply(method, msg.data);
      return { reply, headers, trailers: {} };
    },
    async items(request, o) {
      // The bridge's own requester (docs/nats.md "Streaming"): head, msgs acked every half
      // window, end; it fails a server that runs ahead of its window.
      const h = natsHeaders();
      for (const [k, v] of Object.entries(o?.headers ?? {})) h.set(k, v);
      if (o?.timeoutMs !== undefined) h.set("sb-timeout-ms", String(o.timeoutMs));
      const subject = `${prefix}.${PKG}.LabService.Items`;
      const items: LabItem[] = [];
      let headers: Record<string, string> = {};
      const frames = requestStream(
        connection,
        subject,
        ItemsRequest.encode(ItemsRequest.fromPartial(request)).finish(),
        {
          headers: h,
          window: o?.window ?? DEFAULT_STREAM_WINDOW,
          timeoutMs: natsRequestTimeoutMs(o),
          signal: o?.signal ?? new AbortController().signal,
          maxPayloadBytes: 64 * 1024 * 1024,
          noResponders: () =>
            new BridgeError(
              BridgeCode.UNAVAILABLE,
              Reason.PROCESS_UNAVAILABLE,
              `no responders on ${subject}`,
            ),
          timedOut: () =>
            new BridgeError(
              BridgeCode.DEADLINE_EXCEEDED,
              Reason.DEADLINE_EXCEEDED,
              `no end on ${subject} in time`,
            ),
        },
      );
      for await (const frame of frames) {
        const fields: Record<string, string> = {};
        for (const [k, values] of frame.msg.headers ?? []) fields[k.toLowerCase()] = values.join(", ");
        if (frame.kind === "head") headers = fields;
        else if (frame.kind === "msg") items.push(LabItem.decode(frame.msg.data));
        else {
          const status = fields["sb-status-bin"];
          return status === undefined
            ? { items, headers }
            : { items, fault: faultOfStatus(Buffer.from(status, "base64")), headers };
        }
      }
      throw new Error("the stream ended without its end message");
    },
    async close() {},
  };
}
