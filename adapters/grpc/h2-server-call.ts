import http2 from "node:http2";
import type { Metadata } from "../../bridge/call/metadata.js";
import { setStreamEncoding, wireFormOf } from "../../bridge/call/wire-form.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { CancelHooks, offerCancelHooks } from "./cancel-hooks.js";
import { ACCEPT_ENCODING, COMPRESSIONS, decompressKeepingForm, framePassing } from "./grpc-compression.js";
import { statusTrailers } from "./grpc-error.js";
import { MessageDecoder, MessageTooLargeError } from "./grpc-framing.js";
import { putMetadata } from "./grpc-wire-headers.js";
import { drained } from "./h2-drained.js";
import { PullQueue } from "./pull-queue.js";

const { HTTP2_HEADER_STATUS, HTTP2_HEADER_CONTENT_TYPE, NGHTTP2_NO_ERROR } = http2.constants;

/**
 * Response options with `endStream` given: respond() copies its options and sets
 * endStream on the copy, and on Node 20 a field added to such a copy costs a hidden class
 * per call that only a full collection frees (h2-call.ts, REQUEST_OPTIONS).
 */
const HEADERS_OPTIONS: http2.ServerStreamResponseOptions = { endStream: false, waitForTrailers: true };

/**
 * One inbound gRPC call on one HTTP/2 stream, as the handlers see it: the request's
 * metadata and deadline, its messages, and the ways to answer (headers, messages, then
 * exactly one status). Built by h2-server.ts.
 */
export class GrpcServerCall {
  readonly path: string;
  readonly metadata: Metadata;
  readonly deadlineMs: number | undefined;
  /** The codec of the call's messages (application/grpc+proto or application/grpc+json). */
  readonly codec: "proto" | "json";
  /** The request's grpc-encoding, undefined for identity. */
  get requestEncoding(): string | undefined {
    return this.#encoding;
  }
  /**
   * Aborts when the client cancels the call or the connection goes, before the status.
   * Built on first read: a unary call that never waits for its session's turn never reads
   * it (bridge/call/call.ts), and an AbortController is about 1.5 KB of heap per call.
   */
  get signal(): AbortSignal {
    if (this.#controller === undefined) {
      this.#controller = new AbortController();
      if (this.#cancelled) this.#controller.abort();
      else {
        this.#hooks = new CancelHooks();
        offerCancelHooks(this.#controller.signal, this.#hooks);
      }
    }
    return this.#controller.signal;
  }
  /** True once the client cancelled the call or the connection went, before the status. */
  get cancelled(): boolean {
    return this.#cancelled;
  }
  readonly #stream: http2.ServerHttp2Stream;
  readonly #encoding: string | undefined;
  /** What the client reads in replies (its grpc-accept-encoding), identity aside. */
  readonly #accepts: ReadonlySet<string>;
  /** The grpc-encoding of the response, once its headers went out. */
  #responseEncoding: string | undefined;
  readonly #maxMessageBytes: number;
  #controller: AbortController | undefined;
  /** The outbound hop's cancellation callbacks, run before the signal aborts (cancel-hooks.ts). */
  #hooks: CancelHooks | undefined;
  #cancelled = false;
  #headersSent = false;
  #finished = false;
  #reading = false;
  /** Set when the request broke a limit: nothing more of it is read (RST_STREAM after the status). */
  #refused = false;

  constructor(
    stream: http2.ServerHttp2Stream,
    path: string,
    metadata: Metadata,
    deadlineMs: number | undefined,
    encoding: string | undefined,
    accepts: ReadonlySet<string>,
    maxMessageBytes: number,
    codec: "proto" | "json" = "proto",
  ) {
    this.codec = codec;
    this.#stream = stream;
    this.#accepts = accepts;
    this.path = path;
    this.metadata = metadata;
    this.deadlineMs = deadlineMs;
    this.#encoding = encoding;
    this.#maxMessageBytes = maxMessageBytes;
    // "close" comes once per stream: on() spares the wrapper once() builds per call.
    stream.on("close", () => {
      // A stream that closes before its status went out was cancelled or lost.
      if (!this.#finished) {
        this.#finished = true;
        this.#cancelled = true;
        this.#hooks?.run();
        this.#controller?.abort();
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
      const decoder = new MessageDecoder(this.#maxMessageBytes);
      let failed = false;
      this.#reading = true;
      const onData = (chunk: Buffer): void => {
        try {
          decoder.push(chunk, (flag, body) => messages.push(this.#decoded(flag, body)));
        } catch (error) {
          // Answer at once: waiting for the end of a request that broke a limit would
          // let the client decide how long (and how much) the bridge reads.
          failed = true;
          this.#stream.off("data", onData);
          this.#refuse();
          reject(this.#failure(error));
        }
      };
      this.#stream.on("data", onData);
      this.#stream.on("end", () => {
        if (failed) return;
        if (decoder.partial) reject(invalid("the request ends inside a message"));
        else if (messages.length !== 1) {
          // A unary or server-streaming call with no message or several: the method as
          // called does not exist (UNIMPLEMENTED, as grpc-go and connect-go answer).
          reject(
            new BridgeError(
              Code.UNIMPLEMENTED,
              Reason.MALFORMED_MESSAGE,
              `expected one request message, got ${messages.length}`,
            ),
          );
        } else resolve(messages[0] as Buffer);
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
    if (this.#encoding !== undefined) setStreamEncoding(queue, this.#encoding);
    const decoder = new MessageDecoder(this.#maxMessageBytes);
    this.#reading = true;
    const onData = (chunk: Buffer): void => {
      try {
        decoder.push(chunk, (flag, body) => queue.push(this.#decoded(flag, body)));
      } catch (error) {
        stream.off("data", onData);
        this.#refuse();
        queue.fail(this.#failure(error));
      }
    };
    stream.on("data", onData);
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
   * `first`, when known, is the first response message: if it came compressed from the
   * process in an encoding the client reads, the response declares that encoding so the
   * message passes on compressed; otherwise the response mirrors the request's encoding,
   * as gRPC servers do, when the client reads it. Without `first` (a stream whose
   * messages are still to come) it declares an encoding the client reads, so compressed
   * messages can pass in it; declaring one obliges nothing, each message has its flag.
   */
  sendHeaders(metadata: Metadata, own: Readonly<Record<string, string>> = {}, first?: Uint8Array): void {
    if (this.#headersSent || this.#finished) return;
    this.#headersSent = true;
    this.#responseEncoding = this.#replyEncoding(first);
    const headers: http2.OutgoingHttpHeaders = {
      [HTTP2_HEADER_STATUS]: 200,
      [HTTP2_HEADER_CONTENT_TYPE]: this.codec === "json" ? "application/grpc+json" : "application/grpc",
      "grpc-accept-encoding": ACCEPT_ENCODING,
    };
    if (this.#responseEncoding !== undefined) headers["grpc-encoding"] = this.#responseEncoding;
    putMetadata(headers, metadata, own);
    this.#stream.respond(headers, HEADERS_OPTIONS);
  }

  /** The first of the candidates sendHeaders() describes that the client reads. */
  #replyEncoding(first: Uint8Array | undefined): string | undefined {
    const accepts = this.#accepts;
    // Most clients read no compression or are sent none: nothing to look for.
    if (accepts.size === 0) return undefined;
    const request = this.#encoding;
    if (first !== undefined) {
      const passed = wireFormOf(first)?.encoding;
      if (passed !== undefined && accepts.has(passed)) return passed;
      return request !== undefined && accepts.has(request) ? request : undefined;
    }
    if (request !== undefined && accepts.has(request)) return request;
    return COMPRESSIONS.find((e) => accepts.has(e));
  }

  /** Writes one response message; resolves once the stream can take more. */
  async write(message: Uint8Array): Promise<void> {
    if (this.#finished) return;
    this.sendHeaders({}, {}, message);
    let more = true;
    for (const chunk of framePassing(message, this.#responseEncoding)) more = this.#stream.write(chunk);
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
          [HTTP2_HEADER_CONTENT_TYPE]: this.codec === "json" ? "application/grpc+json" : "application/grpc",
          "grpc-accept-encoding": ACCEPT_ENCODING,
          ...trailers,
        },
        { endStream: true },
      );
    } else {
      // "wantTrailers" comes once, after end(): on() spares once()'s wrapper.
      stream.on("wantTrailers", () => stream.sendTrailers(trailers));
      stream.end();
    }
    if (this.#refused) {
      // gRPC (PROTOCOL-HTTP2.md): a server that answers before the request ended resets
      // the stream with NO_ERROR after the status, so the client stops sending.
      if (!stream.readableEnded) stream.close(NGHTTP2_NO_ERROR);
      return;
    }
    // The request side may still be open (the client has not half-closed): drain it.
    if (!this.#reading) stream.resume();
  }

  /** Stops reading a request that broke a limit; what arrives from now on is dropped unread. */
  #refuse(): void {
    this.#refused = true;
    this.#stream.pause();
  }

  #failure(error: unknown): BridgeError {
    if (error instanceof MessageTooLargeError) {
      return new BridgeError(
        Code.RESOURCE_EXHAUSTED,
        Reason.INVALID_REQUEST,
        `request message of ${error.announcedBytes} bytes exceeds the limit of ${error.limitBytes}`,
      );
    }
    return BridgeError.from(error);
  }

  #decoded(flag: number, body: Buffer): Buffer {
    if (flag === 0) return body;
    if (flag !== 1) throw invalid(`invalid compressed flag ${flag}`);
    // The limit holds for the inflated message too (a small gzip bomb is refused). The
    // compressed bytes stay beside it, to go on to the process as they came.
    return decompressKeepingForm(this.#encoding, body, this.#maxMessageBytes, Reason.INVALID_REQUEST);
  }
}

function invalid(message: string): BridgeError {
  return new BridgeError(Code.INTERNAL, Reason.MALFORMED_MESSAGE, message);
}

function cancelled(): BridgeError {
  return new BridgeError(Code.CANCELLED, Reason.CANCELLED, "the client cancelled the call");
}
