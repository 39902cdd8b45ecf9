import http from "node:http";
import { isBridgeOwned, type Metadata } from "../../bridge/call/metadata.js";
import { createJsonCodec, type JsonCodec } from "../../bridge/codec/json-codec.js";
import { DEFAULTS } from "../../bridge/config/config.js";
import type { ContractSet } from "../../bridge/contracts/contract.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { deliveryHeaders } from "../../bridge/process/delivery-headers.js";
import type {
  Delivery,
  ProcessClient,
  ProcessReply,
  ProcessStreamEvent,
  ProcessTarget,
  ProcessTransport,
  StreamDelivery,
  UnaryDelivery,
} from "../../bridge/process/process-client.js";
import { fromConnectError } from "./connect-error.js";
import { END_STREAM_FLAG, EnvelopeReader, frameEnvelope } from "./connect-framing.js";
import { isProtocolHeader, mediaType, putResponseMetadata } from "./http-metadata.js";

export interface HttpTransportOptions {
  /** The contracts, for processes that speak JSON (`?codec=json`). */
  readonly contracts: Pick<ContractSet, "registry">;
  /** Largest response message accepted from a process, in bytes. Default defaults.maxPayloadBytes. */
  readonly maxResponseBytes?: number;
}

/**
 * Outbound to processes at http://host:port[/prefix][?codec=json|proto] with the Connect
 * protocol (connectrpc.com/docs/protocol): unary as POST with application/proto (or JSON),
 * server streaming in the Connect streaming format. A connect-go, connect-es or
 * connect-python server is a process unchanged; so is a plain handler that answers POST
 * /<package.Service>/<Method> with JSON. Faults map back from Connect error bodies, or by
 * gRPC's HTTP-to-code table when a body is not one (S14).
 */
export function createHttpTransport(options: HttpTransportOptions): ProcessTransport {
  const json = createJsonCodec(options.contracts);
  const maxResponseBytes = options.maxResponseBytes ?? DEFAULTS.maxPayloadBytes;
  return {
    schemes: ["http"],
    connect: (target) => new ConnectProcessClient(target, json, maxResponseBytes),
  };
}

/** Response headers that belong to HTTP, not to the process's metadata. */
const RESPONSE_PROTOCOL_HEADERS: ReadonlySet<string> = new Set(["date", "server", "vary", "keep-alive"]);

class ConnectProcessClient implements ProcessClient {
  readonly #target: ProcessTarget;
  readonly #json: JsonCodec;
  readonly #maxBytes: number;
  readonly #agent: http.Agent;
  readonly #prefix: string;
  readonly #codec: "json" | "proto";
  #closed = false;

  constructor(target: ProcessTarget, json: JsonCodec, maxBytes: number) {
    this.#target = target;
    this.#json = json;
    this.#maxBytes = maxBytes;
    // Keep-alive: one connection per call in flight, reused (HTTP/1.1 has no multiplexing).
    this.#agent = new http.Agent({ keepAlive: true, maxFreeSockets: 64 });
    this.#prefix = target.location.pathname.replace(/\/+$/, "");
    this.#codec = target.location.searchParams.get("codec") === "json" ? "json" : "proto";
  }

  async unary(delivery: UnaryDelivery): Promise<ProcessReply> {
    this.#check(delivery);
    const op = delivery.operation;
    const body =
      this.#codec === "json"
        ? Buffer.from(this.#json.toJson(op.requestType, delivery.payload), "utf8")
        : Buffer.from(delivery.payload);
    const response = await this.#post(delivery, `application/${this.#codec}`, body);
    const { headers, trailers } = splitTrailers(response.headers);
    const text = await readAll(response, this.#maxBytes, delivery.signal);
    if (response.status !== 200) {
      throw fromConnectError(response.status, text.toString("utf8"), { headers, trailers });
    }
    const type = mediaType(response.message.headers["content-type"]);
    const payload =
      type === "application/json"
        ? this.#json.toBinary(op.responseType, text.toString("utf8"))
        : type === "application/proto"
          ? text
          : undefined;
    if (payload === undefined) {
      throw new BridgeError(
        Code.INTERNAL,
        Reason.PROCESS_FAULT,
        `${this.#target.name} answered ${op.path} with content type ${JSON.stringify(type)}, not application/json or application/proto`,
        { headers, trailers },
      );
    }
    return { payload: new Uint8Array(payload), headers, trailers };
  }

  async *stream(delivery: StreamDelivery): AsyncGenerator<ProcessStreamEvent> {
    this.#check(delivery);
    const op = delivery.operation;
    if (op.requestStream) {
      throw new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.NO_PROCESS,
        `${this.#target.name} is an HTTP process: ${op.path} streams requests, which the Connect protocol carries over HTTP/2 only; serve it over grpc://`,
      );
    }
    let request: Uint8Array | undefined;
    for await (const message of delivery.messages) {
      if (request !== undefined)
        throw new BridgeError(Code.INTERNAL, Reason.INTERNAL, "more than one request message");
      request = message;
    }
    const payload =
      this.#codec === "json"
        ? Buffer.from(this.#json.toJson(op.requestType, request ?? new Uint8Array()), "utf8")
        : Buffer.from(request ?? new Uint8Array());
    const response = await this.#post(
      delivery,
      `application/connect+${this.#codec}`,
      frameEnvelope(0, payload),
    );
    const { headers } = splitTrailers(response.headers);
    if (response.status !== 200) {
      const text = await readAll(response, this.#maxBytes, delivery.signal);
      throw fromConnectError(response.status, text.toString("utf8"), { headers });
    }
    yield { type: "headers", metadata: headers };
    const reader = new EnvelopeReader(this.#maxBytes);
    let ended = false;
    try {
      for await (const chunk of response.message) {
        for (const envelope of reader.push(chunk as Buffer)) {
          if (ended) throw protocolError(this.#target, "data after the end-stream message");
          if ((envelope.flags & END_STREAM_FLAG) !== 0) {
            ended = true;
            const end = parseEndStream(envelope.data);
            if (end.error !== undefined) {
              throw fromConnectError(200, JSON.stringify(end.error), { headers, trailers: end.metadata });
            }
            yield { type: "trailers", metadata: end.metadata };
          } else if ((envelope.flags & 0x01) !== 0) {
            throw protocolError(this.#target, "a compressed message, though only identity was offered");
          } else {
            yield {
              type: "message",
              payload:
                this.#codec === "json"
                  ? this.#json.toBinary(op.responseType, envelope.data.toString("utf8"))
                  : new Uint8Array(envelope.data),
            };
          }
        }
      }
      reader.end();
    } catch (error) {
      // S15: a body cut off by our deadline timer is the deadline, not a broken process.
      throw response.deadline.passed ? deadline(this.#target) : aborted(delivery, error);
    } finally {
      response.message.destroy();
    }
    if (!ended) throw protocolError(this.#target, "the stream ended without its end-stream message");
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#agent.destroy();
  }

  #check(delivery: Delivery): void {
    if (this.#closed) {
      throw new BridgeError(
        Code.UNAVAILABLE,
        Reason.PROCESS_UNAVAILABLE,
        `the client for ${this.#target.name} is closed`,
      );
    }
    if (this.#target.envelope) {
      throw new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.NO_PROCESS,
        `${this.#target.name}: envelope-native processes are served over grpc:// only (${delivery.operation.path})`,
      );
    }
  }

  /** Sends the request; resolves once the response head is in. */
  #post(delivery: Delivery, contentType: string, body: Buffer): Promise<Response> {
    const headers: http.OutgoingHttpHeaders = {};
    putResponseMetadata(headers, delivery.metadata);
    Object.assign(headers, deliveryHeaders(delivery));
    headers["content-type"] = contentType;
    headers["content-length"] = body.length;
    headers["connect-protocol-version"] = "1";
    // S15: the deadline travels as the time remaining when the request leaves.
    let timeoutMs: number | undefined;
    if (delivery.deadlineMs !== undefined) {
      timeoutMs = Math.max(0, Math.ceil(delivery.deadlineMs - Date.now()));
      if (timeoutMs <= 0) return Promise.reject(deadline(this.#target));
      headers["connect-timeout-ms"] = String(timeoutMs);
    }
    const location = this.#target.location;
    return new Promise<Response>((resolve, reject) => {
      const request = http.request({
        agent: this.#agent,
        host: location.hostname.replace(/^\[(.*)\]$/, "$1"),
        port: location.port,
        method: "POST",
        path: `${this.#prefix}${delivery.operation.path}`,
        headers,
        signal: delivery.signal,
      });
      let timer: NodeJS.Timeout | undefined;
      const passed = { passed: false };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          passed.passed = true;
          request.destroy(deadline(this.#target));
        }, timeoutMs);
        timer.unref();
      }
      request.once("response", (message) => {
        message.once("close", () => clearTimeout(timer));
        message.on("error", () => {});
        resolve({ status: message.statusCode ?? 0, headers: message.headers, message, deadline: passed });
      });
      request.once("error", (error) => {
        clearTimeout(timer);
        reject(aborted(delivery, error, this.#target));
      });
      request.end(body);
    });
  }
}

interface Response {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly message: http.IncomingMessage;
  /** Set when the deadline timer ended the exchange: what breaks off after that is the deadline (S15). */
  readonly deadline: { readonly passed: boolean };
}

/** Response headers as metadata; Connect unary trailers arrive as "trailer-" headers. */
function splitTrailers(raw: http.IncomingHttpHeaders): { headers: Metadata; trailers: Metadata } {
  const headers: Record<string, readonly string[]> = {};
  const trailers: Record<string, readonly string[]> = {};
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined || RESPONSE_PROTOCOL_HEADERS.has(key)) continue;
    if (isProtocolHeader(key) || isBridgeOwned(key)) continue;
    const values = typeof value === "string" ? [value] : value;
    if (key.startsWith("trailer-")) trailers[key.slice(8)] = values;
    else headers[key] = values;
  }
  return { headers, trailers };
}

function parseEndStream(data: Buffer): { error: unknown; metadata: Metadata } {
  let parsed: { error?: unknown; metadata?: Record<string, unknown> };
  try {
    parsed = JSON.parse(data.toString("utf8")) as typeof parsed;
  } catch {
    throw new BridgeError(Code.INTERNAL, Reason.PROCESS_FAULT, "the end-stream message is not JSON");
  }
  const metadata: Record<string, readonly string[]> = {};
  for (const [key, value] of Object.entries(parsed.metadata ?? {})) {
    if (Array.isArray(value)) metadata[key.toLowerCase()] = value.filter((v) => typeof v === "string");
  }
  return { error: parsed.error ?? undefined, metadata };
}

/** The whole body, refusing more than `maxBytes` (DESIGN §7). */
async function readAll(response: Response, maxBytes: number, signal: AbortSignal): Promise<Buffer> {
  const { message } = response;
  const declared = Number(message.headers["content-length"] ?? 0);
  if (declared > maxBytes) {
    message.destroy();
    throw tooLarge(maxBytes);
  }
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of message) {
      size += (chunk as Buffer).length;
      if (size > maxBytes) {
        message.destroy();
        throw tooLarge(maxBytes);
      }
      chunks.push(chunk as Buffer);
    }
  } catch (error) {
    if (error instanceof BridgeError) throw error;
    if (signal.aborted) throw BridgeError.from(signal.reason);
    // S15: the deadline timer destroyed the exchange mid-body.
    if (response.deadline.passed) {
      throw new BridgeError(
        Code.DEADLINE_EXCEEDED,
        Reason.DEADLINE_EXCEEDED,
        "deadline exceeded reading the process's response",
        {
          cause: error,
        },
      );
    }
    throw new BridgeError(Code.UNAVAILABLE, Reason.PROCESS_UNAVAILABLE, "the process's response broke off", {
      cause: error,
    });
  }
  return Buffer.concat(chunks, size);
}

function tooLarge(maxBytes: number): BridgeError {
  return new BridgeError(
    Code.RESOURCE_EXHAUSTED,
    Reason.PROCESS_FAULT,
    `the process's response exceeds the limit of ${maxBytes} bytes`,
  );
}

function deadline(target: ProcessTarget): BridgeError {
  return new BridgeError(
    Code.DEADLINE_EXCEEDED,
    Reason.DEADLINE_EXCEEDED,
    `deadline exceeded calling ${target.name}`,
  );
}

/** A transport failure: cancelled by the caller, past the deadline, or the process unreachable (retryable). */
function aborted(delivery: Delivery, error: unknown, target?: ProcessTarget): BridgeError {
  if (error instanceof BridgeError) return error;
  if (delivery.signal.aborted) {
    return new BridgeError(Code.CANCELLED, Reason.CANCELLED, "the call was cancelled", { cause: error });
  }
  const message = error instanceof Error ? error.message : String(error);
  return new BridgeError(
    Code.UNAVAILABLE,
    Reason.PROCESS_UNAVAILABLE,
    `${target?.name ?? "the process"} is unreachable: ${message}`,
    { cause: error },
  );
}

function protocolError(target: ProcessTarget, problem: string): BridgeError {
  return new BridgeError(
    Code.INTERNAL,
    Reason.PROCESS_FAULT,
    `${target.name} broke the Connect protocol: ${problem}`,
  );
}
