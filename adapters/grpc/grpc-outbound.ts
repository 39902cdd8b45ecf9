import {
  type CallOptions,
  Client,
  type ClientDuplexStream,
  credentials,
  type Metadata as GrpcMetadata,
  type StatusObject,
} from "@grpc/grpc-js";
import type { Metadata } from "../../bridge/call/metadata.js";
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
import { fromGrpcError } from "./grpc-error.js";
import { fromGrpcMetadata, toGrpcMetadata } from "./grpc-metadata.js";

const DELIVER_PATH = "/sessionbridge.v1.Process/Deliver";

const identity = (value: Buffer): Buffer => value;

/** Outbound to processes at grpc://host:port: one channel per process, reused by every call. */
export function createGrpcTransport(): ProcessTransport {
  return {
    schemes: ["grpc"],
    connect: (target) => new GrpcProcessClient(target),
  };
}

class GrpcProcessClient implements ProcessClient {
  readonly #client: Client;
  readonly #target: ProcessTarget;

  constructor(target: ProcessTarget) {
    this.#target = target;
    this.#client = new Client(target.location.host, credentials.createInsecure(), {
      // Payloads are the process's own messages: let them be as large as gRPC allows.
      "grpc.max_receive_message_length": -1,
      "grpc.max_send_message_length": -1,
    });
  }

  unary(delivery: UnaryDelivery): Promise<ProcessReply> {
    if (this.#target.envelope) return this.#deliverEnvelope(delivery);
    return this.#unary(delivery.operation.path, toBuffer(delivery.payload), delivery);
  }

  async *stream(delivery: StreamDelivery): AsyncGenerator<ProcessStreamEvent> {
    if (this.#target.envelope) {
      throw new BridgeError(
        Code.UNIMPLEMENTED,
        Reason.NO_PROCESS,
        `${this.#target.name} is envelope-native and cannot serve the streaming call ${delivery.operation.path}`,
      );
    }
    yield* this.#stream(delivery);
  }

  async close(): Promise<void> {
    this.#client.close();
  }

  #unary(path: string, payload: Buffer, delivery: Delivery): Promise<ProcessReply> {
    return new Promise<ProcessReply>((resolve, reject) => {
      let value: Buffer | undefined;
      let failure: unknown;
      let headers: Metadata = {};
      const call = this.#client.makeUnaryRequest(
        path,
        identity,
        identity,
        payload,
        outboundMetadata(delivery),
        callOptions(delivery),
        (error, response) => {
          failure = error ?? undefined;
          value = response;
        },
      );
      const onAbort = (): void => call.cancel();
      delivery.signal.addEventListener("abort", onAbort, { once: true });
      call.on("metadata", (md: GrpcMetadata) => {
        headers = fromGrpcMetadata(md);
      });
      // grpc-js reports the status (with trailers) right after the callback.
      call.on("status", (status: StatusObject) => {
        delivery.signal.removeEventListener("abort", onAbort);
        if (failure !== undefined || value === undefined) {
          reject(fromGrpcError(failure ?? status));
          return;
        }
        resolve({ payload: value, headers, trailers: fromGrpcMetadata(status.metadata) });
      });
    });
  }

  async *#stream(delivery: StreamDelivery): AsyncGenerator<ProcessStreamEvent> {
    const op = delivery.operation;
    const metadata = outboundMetadata(delivery);
    const options = callOptions(delivery);
    // All three streaming kinds go through grpc-js's bidi entry point: the framing on the
    // wire is identical, and the process sees the method path it declared.
    const call: ClientDuplexStream<Buffer, Buffer> = this.#client.makeBidiStreamRequest(
      op.path,
      identity,
      identity,
      metadata,
      options,
    );
    // Reading pauses while the caller has not taken what came in (backpressure).
    const events = new EventQueue<ProcessStreamEvent>(
      () => call.pause(),
      () => call.resume(),
    );
    const onAbort = (): void => call.cancel();
    delivery.signal.addEventListener("abort", onAbort, { once: true });
    call.on("metadata", (md: GrpcMetadata) =>
      events.push({ type: "headers", metadata: fromGrpcMetadata(md) }),
    );
    call.on("data", (payload: Buffer) => events.push({ type: "message", payload }));
    call.on("status", (status: StatusObject) => {
      if (status.code === 0) {
        events.push({ type: "trailers", metadata: fromGrpcMetadata(status.metadata) });
        events.end();
      } else events.fail(fromGrpcError(status));
    });
    call.on("error", () => {
      // The status event carries the same failure with its trailers.
    });
    const writing = writeAll(call, delivery.messages).catch((error: unknown) => {
      call.cancel();
      events.fail(BridgeError.from(error));
    });
    try {
      yield* events;
    } finally {
      delivery.signal.removeEventListener("abort", onAbort);
      // Leaving early (the caller went away): stop the process's side too.
      call.cancel();
      await writing;
    }
  }

  async #deliverEnvelope(delivery: UnaryDelivery): Promise<ProcessReply> {
    const reply = await this.#unary(DELIVER_PATH, Buffer.from(toEnvelopeBytes(delivery)), delivery);
    return envelopeReply(reply);
  }
}

async function writeAll(
  call: ClientDuplexStream<Buffer, Buffer>,
  messages: AsyncIterable<Uint8Array>,
): Promise<void> {
  for await (const message of messages) {
    if (!call.write(toBuffer(message))) {
      await new Promise<void>((resolve) => call.once("drain", resolve));
    }
  }
  call.end();
}

function outboundMetadata(delivery: Delivery): GrpcMetadata {
  return toGrpcMetadata(delivery.metadata, deliveryHeaders(delivery));
}

/** S15: the deadline travels as remaining time (grpc-js sends grpc-timeout). */
function callOptions(delivery: Delivery): CallOptions {
  return delivery.deadlineMs === undefined ? {} : { deadline: delivery.deadlineMs };
}

function toBuffer(bytes: Uint8Array): Buffer {
  return Buffer.isBuffer(bytes) ? bytes : Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** A push-to-pull bridge from grpc-js events to an async iterator, with backpressure. */
class EventQueue<T> implements AsyncIterable<T> {
  static readonly HIGH_WATER = 64;
  readonly #items: T[] = [];
  readonly #pause: () => void;
  readonly #resume: () => void;
  #paused = false;
  #done = false;
  #error: unknown;
  #wake: (() => void) | undefined;

  constructor(pause: () => void, resume: () => void) {
    this.#pause = pause;
    this.#resume = resume;
  }

  push(item: T): void {
    this.#items.push(item);
    if (!this.#paused && this.#items.length >= EventQueue.HIGH_WATER) {
      this.#paused = true;
      this.#pause();
    }
    this.#wake?.();
  }

  end(): void {
    this.#done = true;
    this.#wake?.();
  }

  fail(error: unknown): void {
    if (this.#done) return;
    this.#error = error;
    this.#done = true;
    this.#wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    for (;;) {
      const item = this.#items.shift();
      if (item !== undefined) {
        if (this.#paused && this.#items.length < EventQueue.HIGH_WATER / 2) {
          this.#paused = false;
          this.#resume();
        }
        yield item;
        continue;
      }
      if (this.#done) {
        if (this.#error !== undefined) throw this.#error;
        return;
      }
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
      });
      this.#wake = undefined;
    }
  }
}
