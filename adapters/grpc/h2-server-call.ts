import http2 from "node:http2";
import zlib from "node:zlib";
import type { Metadata } from "../../bridge/call/metadata.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { statusTrailers } from "./grpc-error.js";
import { frameMessage, MessageDecoder } from "./grpc-framing.js";
import { putMetadata } from "./grpc-wire-headers.js";
import { drained } from "./h2-drained.js";
import { PullQueue } from "./pull-queue.js";

const { HTTP2_HEADER_STATUS, HTTP2_HEADER_CONTENT_TYPE } = http2.constants;

/** What the bridge accepts in compressed request messages; it never compresses replies. */
export const ACCEPT_ENCODING = "identity,deflate,gzip";

/**
 * One inbound gRPC call on one HTTP/2 stream, as the handlers see it: the request's
 * metadata and deadline, its messages, and the ways to answer (headers, messages, then
 * exactly one status). Built by h2-server.ts.
 */
export class GrpcServerCall {
  readonly path: string;
  readonly metadata: Metadata;
  readonly deadlineMs: number | undefined;
  /** Aborts when the client cancels the call or the connection goes, before the status. */
  readonly signal: AbortSignal;
  readonly #stream: http2.ServerHttp2Stream;
  readonly #encoding: string | undefined;
  readonly #maxMessageBytes: number;
  readonly #controller = new AbortController();
  #headersSent = false;
  #finished = false;
  #reading = false;

  constructor(
    stream: http2.ServerHttp2Stream,
    path: string,
    metadata: Metadata,
    deadlineMs: number | undefined,
    encoding: string | undefined,
    maxMessageBytes: number,
  ) {
    this.#stream = stream;
    this.path = path;
    this.metadata = metadata;
    this.deadlineMs = deadlineMs;
    this.#encoding = encoding;
    this.#maxMessageBytes = maxMessageBytes;
    this.signal = this.#controller.signal;
    stream.once("close", () => {
      // A stream that closes before its status went out was cancelled or lost.
      if (!this.#finished) {
        this.#finished = true;
        this.#controller.abort();
      }
    });
  }

  /** True once the status was sent or the client went away. */
  get finished(): boolean {
    return this.#finished;
  }

  /** The single request message of a unary or server-streaming call. */
  message(): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      const messages: Buffer[] = [];
      const decoder = new MessageDecoder();
      let failure: BridgeError | undefined;
      this.#reading = true;
      this.#stream.on("data", (chunk: Buffer) => {
        if (failure !== undefined) return;
        try {
          decoder.push(chunk, (flag, body) => messages.push(this.#decoded(flag, body)));
        } catch (error) {
          failure = BridgeError.from(error);
        }
      });
      this.#stream.once("end", () => {
        if (failure !== undefined) reject(failure);
        else if (decoder.partial) reject(invalid("the request ends inside a message"));
        else if (messages.length !== 1)
          reject(invalid(`expected one request message, got ${messages.length}`));
        else resolve(messages[0] as Buffer);
      });
    });
  }

  /** The request messages of a client- or bidi-streaming call, with backpressure. */
  messages(): AsyncIterable<Buffer> {
    const stream = this.#stream;
    const queue = new PullQueue<Buffer>(
      () => stream.pause(),
      () => stream.resume(),
    );
    const decoder = new MessageDecoder();
    this.#reading = true;
    stream.on("data", (chunk: Buffer) => {
      try {
        decoder.push(chunk, (flag, body) => queue.push(this.#decoded(flag, body)));
      } catch (error) {
        queue.fail(BridgeError.from(error));
        stream.pause();
      }
    });
    stream.once("end", () => {
      if (decoder.partial) queue.fail(invalid("the request stream ends inside a message"));
      else queue.end();
    });
    stream.once("close", () => queue.fail(cancelled()));
    return queue;
  }

  /**
   * Response headers; only the first call sends anything. `own` holds the bridge's own
   * fields (sb-session-id, sb-message-id), which metadata from elsewhere may never set.
   */
  sendHeaders(metadata: Metadata, own: Readonly<Record<string, string>> = {}): void {
    if (this.#headersSent || this.#finished) return;
    this.#headersSent = true;
    const headers: http2.OutgoingHttpHeaders = {
      [HTTP2_HEADER_STATUS]: 200,
      [HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
      "grpc-accept-encoding": ACCEPT_ENCODING,
    };
    putMetadata(headers, metadata, own);
    this.#stream.respond(headers, { waitForTrailers: true });
  }

  /** Writes one response message; resolves once the stream can take more. */
  async write(message: Uint8Array): Promise<void> {
    if (this.#finished) return;
    this.sendHeaders({});
    let more = true;
    for (const chunk of frameMessage(message)) more = this.#stream.write(chunk);
    if (!more) await drained(this.#stream);
  }

  /** Ends the call with status OK and these trailers. */
  end(trailers: Metadata): void {
    this.#finish(statusTrailers(Code.OK, "", trailers));
  }

  /** Ends the call with the error's status (S14); `own` adds the bridge's fields such as sb-session-id. */
  fail(error: BridgeError, own: Readonly<Record<string, string>> = {}): void {
    this.#finish(statusTrailers(error.code, error.message, {}, error, own));
  }

  #finish(trailers: http2.OutgoingHttpHeaders): void {
    if (this.#finished) return;
    this.#finished = true;
    const stream = this.#stream;
    if (stream.destroyed || stream.closed) return;
    if (!this.#headersSent) {
      // Trailers-only: status and metadata in a single HEADERS frame.
      this.#headersSent = true;
      stream.respond(
        {
          [HTTP2_HEADER_STATUS]: 200,
          [HTTP2_HEADER_CONTENT_TYPE]: "application/grpc",
          "grpc-accept-encoding": ACCEPT_ENCODING,
          ...trailers,
        },
        { endStream: true },
      );
    } else {
      stream.once("wantTrailers", () => stream.sendTrailers(trailers));
      stream.end();
    }
    // The request side may still be open (the client has not half-closed): drain it.
    if (!this.#reading) stream.resume();
  }

  #decoded(flag: number, body: Buffer): Buffer {
    if (body.length > this.#maxMessageBytes) {
      throw new BridgeError(
        Code.RESOURCE_EXHAUSTED,
        Reason.INVALID_REQUEST,
        `request message of ${body.length} bytes exceeds the limit of ${this.#maxMessageBytes}`,
      );
    }
    if (flag === 0) return body;
    if (flag !== 1) throw invalid(`invalid compressed flag ${flag}`);
    switch (this.#encoding) {
      case "gzip":
        return zlib.gunzipSync(body, { maxOutputLength: this.#maxMessageBytes });
      case "deflate":
        return zlib.inflateSync(body, { maxOutputLength: this.#maxMessageBytes });
      default:
        throw new BridgeError(
          Code.UNIMPLEMENTED,
          Reason.INVALID_REQUEST,
          `compressed message with grpc-encoding ${JSON.stringify(this.#encoding ?? "identity")}; accepted: ${ACCEPT_ENCODING}`,
        );
    }
  }
}

function invalid(message: string): BridgeError {
  return new BridgeError(Code.INTERNAL, Reason.MALFORMED_MESSAGE, message);
}

function cancelled(): BridgeError {
  return new BridgeError(Code.CANCELLED, Reason.CANCELLED, "the client cancelled the call");
}
