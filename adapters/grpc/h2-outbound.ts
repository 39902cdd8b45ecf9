import { readFileSync } from "node:fs";
import type { OutgoingHttpHeaders } from "node:http2";
import type { Metadata } from "../../bridge/call/metadata.js";
import { streamEncodingOf, wireFormOf } from "../../bridge/call/wire-form.js";
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
import { envelopeReply, toEnvelopeBytes } from "./envelope-delivery.js";
import { ACCEPT_ENCODING, COMPRESSIONS, framePassing } from "./grpc-compression.js";
import { fromGrpcStatus } from "./grpc-error.js";
import { grpcTimeout, putMetadata } from "./grpc-wire-headers.js";
import { type CallListener, H2Call } from "./h2-call.js";
import { H2ConnectionPool } from "./h2-connection.js";
import { PullQueue } from "./pull-queue.js";

const DELIVER_PATH = "/sessionbridge.v1.Process/Deliver";

export interface GrpcTransportOptions {
  /**
   * How long a new connection may take to be ready (TCP connected and the process's
   * HTTP/2 SETTINGS received) before the calls waiting for it fail with UNAVAILABLE.
   * Default 20 000, grpc-js's minimum connect timeout.
   */
  readonly connectTimeoutMs?: number;
  /**
   * Largest response message accepted from a process, in bytes, checked on its length
   * prefix before it is buffered and again after decompression. Default 4 MiB, gRPC's
   * default receive limit; the bridge passes its maxPayloadBytes.
   */
  readonly maxReplyBytes?: number;
}

/**
 * Outbound to processes at grpc://host:port, as gRPC over HTTP/2 on node:http2 directly:
 * the bridge's hot path (DESIGN §6), so every call does only what the protocol needs.
 * One pool of sessions per process location, shared by every call to it, also when
 * several configured processes live at the same location.
 */
export function createGrpcTransport(options: GrpcTransportOptions = {}): ProcessTransport {
  const connectTimeoutMs = options.connectTimeoutMs ?? 20_000;
  if (!Number.isFinite(connectTimeoutMs) || connectTimeoutMs <= 0) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_CONFIG,
      `connectTimeoutMs must be a positive number of milliseconds, got ${connectTimeoutMs}`,
    );
  }
  const maxReplyBytes = options.maxReplyBytes ?? 4 * 1024 * 1024;
  if (!Number.isSafeInteger(maxReplyBytes) || maxReplyBytes <= 0) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_CONFIG,
      `maxReplyBytes must be a positive whole number of bytes, got ${maxReplyBytes}`,
    );
  }
  const pools = new Map<string, { readonly pool: H2ConnectionPool; users: number }>();
  const lease = (authority: string): PoolLease => {
    let entry = pools.get(authority);
    if (entry === undefined) {
      entry = { pool: new H2ConnectionPool(authority, connectTimeoutMs), users: 0 };
      pools.set(authority, entry);
    }
    entry.users += 1;
    const leased = entry;
    return {
      pool: leased.pool,
      release: async () => {
        leased.users -= 1;
        if (leased.users > 0) return;
        pools.delete(authority);
        await leased.pool.close();
      },
    };
  };
  return {
    schemes: ["grpc"],
    connect: (target) => new H2ProcessClient(target, lease(target.location.host), maxReplyBytes),
  };
}

/** One client's share of the pool for its location; the last release closes the pool. */
interface PoolLease {
  readonly pool: H2ConnectionPool;
  release(): Promise<void>;
}

class H2ProcessClient implements ProcessClient {
  readonly #target: ProcessTarget;
  readonly #authority: string;
  readonly #lease: PoolLease;
  readonly #pool: H2ConnectionPool;
  readonly #maxReplyBytes: number;
  #closed = false;

  constructor(target: ProcessTarget, lease: PoolLease, maxReplyBytes: number) {
    this.#target = target;
    this.#maxReplyBytes = maxReplyBytes;
    this.#authority = target.location.host;
    this.#lease = lease;
    this.#pool = lease.pool;
  }

  unary(delivery: UnaryDelivery): Promise<ProcessReply> {
    if (this.#closed) return Promise.reject(this.#closedError());
    if (this.#target.envelope) return this.#deliverEnvelope(delivery);
    return this.#unary(delivery.operation.path, delivery.payload, delivery);
  }

  async *stream(delivery: StreamDelivery): AsyncGenerator<ProcessStreamEvent> {
    if (this.#closed) throw this.#closedError();
    if (this.#target.envelope) {
      throw new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.NO_PROCESS,
        `${this.#target.name} is envelope-native and cannot serve the streaming call ${delivery.operation.path}`,
      );
    }
    yield* this.#stream(delivery);
  }

  /** Idempotent; the connections close once no other client at the location uses them. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#lease.release();
  }

  #closedError(): BridgeError {
    return new BridgeError(
      Code.UNAVAILABLE,
      Reason.PROCESS_UNAVAILABLE,
      `the client for ${this.#target.name} is closed`,
    );
  }

  #unary(path: string, payload: Uint8Array, delivery: Delivery): Promise<ProcessReply> {
    return new Promise<ProcessReply>((resolve, reject) => {
      // A message that came compressed goes on in the same bytes (bridge/call/wire-form.ts)
      // unless the process said it does not read that encoding.
      const encoding = passedEncoding(wireFormOf(payload)?.encoding, this.#pool.accepts);
      H2Call.start({
        pool: this.#pool,
        headers: () => this.#headers(path, delivery, encoding),
        deadlineMs: delivery.deadlineMs,
        signal: delivery.signal,
        maxReplyBytes: this.#maxReplyBytes,
        request: framePassing(payload, encoding),
        listener: new UnaryReplyListener(resolve, reject),
      });
    });
  }

  /** All three streaming kinds: the framing on the wire is the same for each. */
  async *#stream(delivery: StreamDelivery): AsyncGenerator<ProcessStreamEvent> {
    // The queue pauses the HTTP/2 stream while the caller lags (read-side backpressure).
    const events = new PullQueue<ProcessStreamEvent>(
      () => call.pause(),
      () => call.resume(),
    );
    // The messages are not known yet when the stream opens: it declares the client's
    // encoding when the stream is passed through as it came, else one the process said
    // it reads; each message that came in the declared encoding goes on compressed.
    const accepts = this.#pool.accepts;
    const encoding =
      passedEncoding(streamEncodingOf(delivery.messages), accepts) ??
      COMPRESSIONS.find((e) => accepts?.has(e) === true);
    const call = H2Call.start({
      pool: this.#pool,
      headers: () => this.#headers(delivery.operation.path, delivery, encoding),
      deadlineMs: delivery.deadlineMs,
      signal: delivery.signal,
      maxReplyBytes: this.#maxReplyBytes,
      ...(encoding === undefined ? {} : { encoding }),
      listener: {
        onHeaders: (metadata) => events.push({ type: "headers", metadata }),
        onMessage: (payload) => events.push({ type: "message", payload }),
        onEnd: (metadata) => {
          events.push({ type: "trailers", metadata });
          events.end();
        },
        onError: (error) => events.fail(error),
      },
    });
    void sendAll(call, delivery.messages);
    try {
      yield* events;
    } finally {
      // Left early (the caller went away): stop the process's side too.
      call.cancel(new BridgeError(Code.CANCELLED, Reason.CANCELLED, "the caller stopped reading the stream"));
    }
  }

  async #deliverEnvelope(delivery: UnaryDelivery): Promise<ProcessReply> {
    return envelopeReply(await this.#unary(DELIVER_PATH, toEnvelopeBytes(delivery), delivery));
  }

  #headers(path: string, delivery: Delivery, encoding: string | undefined): OutgoingHttpHeaders {
    const headers: OutgoingHttpHeaders = {
      ":method": "POST",
      ":scheme": "http",
      ":path": path,
      ":authority": this.#authority,
      "content-type": "application/grpc",
      te: "trailers",
      // What the bridge really reads: a process that compresses its replies has them
      // passed on compressed to clients that read them (bridge/call/wire-form.ts).
      "grpc-accept-encoding": ACCEPT_ENCODING,
      "user-agent": userAgent(),
    };
    if (encoding !== undefined) headers["grpc-encoding"] = encoding;
    // S15: the deadline travels as the time remaining when the stream opens.
    if (delivery.deadlineMs !== undefined)
      headers["grpc-timeout"] = grpcTimeout(delivery.deadlineMs - Date.now());
    putMetadata(headers, delivery.metadata, deliveryHeaders(delivery));
    return headers;
  }
}

/**
 * Collects the reply of a unary call: one object per call rather than a closure for each
 * event (DESIGN §6, hot path).
 */
class UnaryReplyListener implements CallListener {
  readonly #resolve: (reply: ProcessReply) => void;
  readonly #reject: (error: BridgeError) => void;
  #headers: Metadata = {};
  #reply: Buffer | undefined;
  #count = 0;

  constructor(resolve: (reply: ProcessReply) => void, reject: (error: BridgeError) => void) {
    this.#resolve = resolve;
    this.#reject = reject;
  }

  onHeaders(metadata: Metadata): void {
    this.#headers = metadata;
  }

  onMessage(message: Buffer): void {
    this.#count += 1;
    this.#reply ??= message;
  }

  onEnd(trailers: Metadata): void {
    if (this.#count === 1 && this.#reply !== undefined) {
      this.#resolve({ payload: this.#reply, headers: this.#headers, trailers });
    } else {
      this.#reject(
        fromGrpcStatus(Code.INTERNAL, `expected one response message, got ${this.#count}`, trailers),
      );
    }
  }

  /** S14, S15: headers the process sent before failing travel with the fault. */
  onError(error: BridgeError): void {
    this.#reject(withHeaders(error, this.#headers));
  }
}

function withHeaders(error: BridgeError, headers: Metadata): BridgeError {
  if (Object.keys(headers).length === 0) return error;
  return new BridgeError(error.code, error.reason, error.message, {
    metadata: error.metadata,
    details: error.details,
    fromProcess: error.fromProcess,
    headers,
    trailers: error.trailers,
    cause: error.cause ?? error,
  });
}

/**
 * The encoding a message that arrived in `encoding` goes on in: the same, as a
 * transparent proxy would, unless the process's grpc-accept-encoding leaves it out. A
 * process that never said what it reads (grpc-go servers do not) gets what the client
 * chose, which is what the client's call would have sent it directly.
 */
function passedEncoding(
  encoding: string | undefined,
  accepts: ReadonlySet<string> | undefined,
): string | undefined {
  if (encoding === undefined) return undefined;
  return accepts === undefined || accepts.has(encoding) ? encoding : undefined;
}

/** Sends the request messages as the stream takes them (write backpressure), then half-closes. */
async function sendAll(call: H2Call, messages: AsyncIterable<Uint8Array>): Promise<void> {
  try {
    for await (const message of messages) {
      if (!(await call.write(message))) return;
    }
    await call.end();
  } catch (error) {
    call.cancel(BridgeError.from(error));
  }
}

let agent: string | undefined;

/** sessionbridge/<version>, the version read once from package.json (dist/adapters/grpc → root). */
function userAgent(): string {
  if (agent === undefined) {
    try {
      const file = new URL("../../../package.json", import.meta.url);
      agent = `sessionbridge/${(JSON.parse(readFileSync(file, "utf8")) as { version: string }).version}`;
    } catch {
      agent = "sessionbridge";
    }
  }
  return agent;
}
