import http2 from "node:http2";
import type { Metadata } from "../../bridge/call/metadata.js";
import { NEVER_ABORTED } from "../../bridge/engine/engine-context.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { onCancel } from "./cancel-hooks.js";
import { decompressKeepingForm, framePassing } from "./grpc-compression.js";
import { fromGrpcStatus } from "./grpc-error.js";
import { MessageDecoder, MessageTooLargeError } from "./grpc-framing.js";
import { metadataOf } from "./grpc-wire-headers.js";
import {
  cancelled,
  closedWithoutStatus,
  connectionLost,
  deadlineExceeded,
  finalStatus,
  httpFailure,
  isFinal,
  resetAtDeadline,
} from "./h2-call-status.js";
import type { H2Connection, H2ConnectionPool } from "./h2-connection.js";
import { drained } from "./h2-drained.js";
import { REQUEST_OPTIONS } from "./h2-request-options.js";

const { NGHTTP2_CANCEL, NGHTTP2_REFUSED_STREAM, NGHTTP2_NO_ERROR } = http2.constants;

/** What a call reports, in wire order; exactly one of onEnd and onError comes last. */
export interface CallListener {
  /** The response headers (not sent for a trailers-only response). */
  onHeaders(metadata: Metadata): void;
  onMessage(payload: Buffer): void;
  /** The call ended with status OK; these are its trailers. */
  onEnd(trailers: Metadata): void;
  onError(error: BridgeError): void;
}

export interface CallStart {
  readonly pool: H2ConnectionPool;
  /** Builds the request headers when the stream opens, so grpc-timeout is as fresh as it can be. */
  readonly headers: () => http2.OutgoingHttpHeaders;
  readonly deadlineMs: number | undefined;
  readonly signal: AbortSignal;
  /** Largest response message taken from the process, in bytes, compressed or inflated. */
  readonly maxReplyBytes: number;
  /** The request's grpc-encoding, for messages written one by one (write()). */
  readonly encoding?: string;
  readonly listener: CallListener;
  /**
   * The whole request, for a unary call: it is sent at once, and sent again on a new
   * stream if the process refused the first one unseen (REFUSED_STREAM, or a stream above
   * the last one a GOAWAY accepted).
   */
  readonly request?: readonly Buffer[];
}

/** Where an attempt's stream keeps its state for the shared listeners (H2Call.#listen). */
const ATTEMPT = Symbol("sessionbridge.h2Attempt");

/** One attempt of a call: its stream's connection and what its response has shown so far. */
interface Attempt {
  readonly call: H2Call;
  readonly connection: H2Connection;
  readonly decoder: MessageDecoder;
  responded: boolean;
  /** The response's grpc-encoding. */
  encoding: string | undefined;
  /** The status: trailers, or the headers of a trailers-only response. */
  status: http2.IncomingHttpHeaders | undefined;
  streamError: (Error & { code?: string }) | undefined;
  /** Why the response ended unfinished (no status, or inside a message), decided on close. */
  unfinished: string | undefined;
}

type AttemptStream = http2.ClientHttp2Stream & { [ATTEMPT]: Attempt };

/** Attempts of a call whose stream the process refused or dropped without looking at it. */
const MAX_UNSEEN_ATTEMPTS = 3;

/** Longest timer Node keeps (about 24.8 days); a later deadline is never reached in practice. */
const MAX_TIMER_MS = 2 ** 31 - 1;

/**
 * One gRPC call on one HTTP/2 stream (PROTOCOL-HTTP2.md): opens the stream on a pooled
 * session, enforces the deadline and the caller's cancellation, decodes the response
 * (headers, length-prefixed messages, trailers or trailers-only) and reports it to the
 * listener. Unary and streaming calls share it; only the request side differs.
 */
export class H2Call {
  readonly #start: CallStart;
  #stream: http2.ClientHttp2Stream | undefined;
  #done = false;
  #attempts = 0;
  #timer: NodeJS.Timeout | undefined;
  /** Stops listening for the caller leaving (cancel-hooks.ts). */
  #stopListening: (() => void) | undefined;
  /** Writers waiting for the stream to open. */
  #opening: (() => void)[] | undefined;
  #paused = false;

  /** Starts a call; it reports to `start.listener` from here on, possibly before this returns. */
  static start(start: CallStart): H2Call {
    const call = new H2Call(start);
    call.#begin();
    return call;
  }

  private constructor(start: CallStart) {
    this.#start = start;
  }

  #begin(): void {
    const { signal, deadlineMs } = this.#start;
    if (signal.aborted) {
      this.#settle(cancelled());
      return;
    }
    if (deadlineMs !== undefined) {
      const remaining = deadlineMs - Date.now();
      // S15: a deadline already gone fails here, without a byte sent.
      if (remaining <= 0) {
        this.#settle(deadlineExceeded());
        return;
      }
      if (remaining <= MAX_TIMER_MS) {
        this.#timer = setTimeout(() => this.cancel(deadlineExceeded()), remaining);
      }
    }
    // A delivery in a session is never cancelled with its caller (S9): its signal never
    // aborts, and listening on it would only cost every call a listener entry.
    if (signal !== NEVER_ABORTED) {
      this.#stopListening = onCancel(signal, () => this.cancel(cancelled()));
    }
    this.#open();
  }

  get done(): boolean {
    return this.#done;
  }

  /**
   * Writes one request message, resolving when the stream can take more (backpressure)
   * with false once the call has ended and nothing more should be sent.
   */
  async write(message: Uint8Array): Promise<boolean> {
    const stream = this.#stream ?? (await this.#opened());
    if (stream === undefined || this.#done) return false;
    let more = true;
    for (const chunk of framePassing(message, this.#start.encoding)) more = stream.write(chunk);
    if (!more) await drained(stream);
    return !this.#done;
  }

  /** Ends the request side (half-close). */
  async end(): Promise<void> {
    const stream = this.#stream ?? (await this.#opened());
    if (stream !== undefined && !this.#done) stream.end();
  }

  /** Stops reading the response: HTTP/2 flow control then holds the process back. */
  pause(): void {
    this.#paused = true;
    this.#stream?.pause();
  }

  resume(): void {
    this.#paused = false;
    this.#stream?.resume();
  }

  /** Ends the call with `error` and resets the stream (RST_STREAM CANCEL); a no-op once ended. */
  cancel(error: BridgeError): void {
    if (this.#done) return;
    this.#settle(error);
    const stream = this.#stream;
    if (stream !== undefined && !stream.destroyed) stream.close(NGHTTP2_CANCEL);
  }

  #opened(): Promise<http2.ClientHttp2Stream | undefined> {
    if (this.#done) return Promise.resolve(undefined);
    return new Promise((resolve) => {
      const opening = this.#opening ?? [];
      opening.push(() => resolve(this.#done ? undefined : this.#stream));
      this.#opening = opening;
    });
  }

  #open(): void {
    this.#attempts += 1;
    let acquired: H2Connection | Promise<H2Connection>;
    try {
      acquired = this.#start.pool.acquire();
    } catch (error) {
      this.#settle(BridgeError.from(error, Code.UNAVAILABLE, Reason.PROCESS_UNAVAILABLE));
      return;
    }
    if (acquired instanceof Promise) {
      acquired.then(
        (connection) => this.#request(connection),
        (error: unknown) =>
          this.#settle(BridgeError.from(error, Code.UNAVAILABLE, Reason.PROCESS_UNAVAILABLE)),
      );
    } else this.#request(acquired);
  }

  #request(connection: H2Connection): void {
    if (this.#done) {
      connection.release();
      return;
    }
    let stream: http2.ClientHttp2Stream;
    try {
      stream = connection.session.request(this.#start.headers(), REQUEST_OPTIONS);
    } catch (error) {
      // The session went away between the choice and now, or a header is malformed.
      connection.release();
      const unusable = !connection.usable;
      this.#settle(
        BridgeError.from(
          error,
          unusable ? Code.UNAVAILABLE : Code.INTERNAL,
          unusable ? Reason.PROCESS_UNAVAILABLE : Reason.INTERNAL,
        ),
      );
      return;
    }
    this.#stream = stream;
    this.#listen(stream, connection);
    if (this.#paused) stream.pause();
    const request = this.#start.request;
    if (request !== undefined) {
      if (request.length > 1) stream.cork();
      for (let i = 0; i < request.length - 1; i++) stream.write(request[i]);
      stream.end(request[request.length - 1]);
    }
    const opening = this.#opening;
    this.#opening = undefined;
    if (opening !== undefined) for (const wake of opening) wake();
  }

  /**
   * Listens to one attempt's stream. The listeners are shared functions that find the
   * call and the attempt's state on the stream itself, rather than closures made for
   * every call (DESIGN §6, hot path); they act only while the stream is the call's
   * current one and the call is not over.
   */
  #listen(stream: http2.ClientHttp2Stream, connection: H2Connection): void {
    const attempt = stream as AttemptStream;
    attempt[ATTEMPT] = {
      call: this,
      connection,
      decoder: new MessageDecoder(this.#start.maxReplyBytes),
      responded: false,
      encoding: undefined,
      status: undefined,
      streamError: undefined,
      unfinished: undefined,
    };
    stream.on("response", H2Call.#onResponse);
    stream.on("data", H2Call.#onData);
    stream.on("trailers", H2Call.#onTrailers);
    stream.on("end", H2Call.#onEnd);
    stream.on("error", H2Call.#onError);
    stream.on("close", H2Call.#onClose);
  }

  /** The attempt's state when `stream` is this call's current stream and the call goes on. */
  static #current(stream: AttemptStream): Attempt | undefined {
    const attempt = stream[ATTEMPT];
    return stream === attempt.call.#stream && !attempt.call.#done ? attempt : undefined;
  }

  static readonly #onResponse = function (
    this: AttemptStream,
    headers: http2.IncomingHttpHeaders & http2.IncomingHttpStatusHeader,
    flags: number,
  ): void {
    const attempt = H2Call.#current(this);
    if (attempt === undefined) return;
    const call = attempt.call;
    attempt.responded = true;
    call.#start.pool.learnAccepts(headers["grpc-accept-encoding"]);
    if (headers["grpc-status"] !== undefined || (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0) {
      // Trailers-only: the status came in the headers (or the stream ended without one).
      attempt.status = headers;
      return;
    }
    const httpStatus = Number(headers[":status"]);
    if (httpStatus !== 200) {
      call.cancel(httpFailure(httpStatus));
      return;
    }
    const contentType = headers["content-type"];
    if (contentType === undefined || !contentType.startsWith("application/grpc")) {
      call.cancel(
        fromGrpcStatus(Code.UNKNOWN, `the process answered with content-type ${contentType ?? "(none)"}`, {}),
      );
      return;
    }
    attempt.encoding = headers["grpc-encoding"] as string | undefined;
    call.#start.listener.onHeaders(metadataOf(headers));
  };

  static readonly #onData = function (this: AttemptStream, chunk: Buffer): void {
    const attempt = H2Call.#current(this);
    if (attempt === undefined) return;
    const call = attempt.call;
    try {
      attempt.decoder.push(chunk, (flag, bytes) => {
        if (H2Call.#current(this) === undefined) return;
        if (flag === 0) call.#start.listener.onMessage(bytes);
        else call.#compressed(flag, bytes, attempt.encoding);
      });
    } catch (error) {
      // Checked on the prefix, before the body is buffered: a process cannot make the
      // bridge hold more than the limit for one reply.
      call.cancel(
        error instanceof MessageTooLargeError
          ? new BridgeError(
              Code.RESOURCE_EXHAUSTED,
              Reason.PROCESS_FAULT,
              `the process answered with a message of ${error.announcedBytes} bytes, over the limit of ${error.limitBytes}`,
            )
          : BridgeError.from(error, Code.INTERNAL, Reason.PROCESS_FAULT),
      );
    }
  };

  static readonly #onTrailers = function (this: AttemptStream, trailers: http2.IncomingHttpHeaders): void {
    this[ATTEMPT].status = trailers;
  };

  static readonly #onEnd = function (this: AttemptStream): void {
    const attempt = H2Call.#current(this);
    if (attempt === undefined) return;
    if (attempt.decoder.partial) attempt.unfinished = "the response ended inside a message";
    else if (!isFinal(attempt.status))
      attempt.unfinished = "the process ended the call without a grpc-status";
    // An unfinished response is settled on close, when it is known whether the
    // connection went with it: a dying connection ends its streams this way.
    else attempt.call.#finish(attempt.status);
    // The process has answered: whatever we still had to send is no longer wanted.
    if (!this.writableEnded && !this.destroyed) this.close(NGHTTP2_CANCEL);
  };

  static readonly #onError = function (this: AttemptStream, error: Error): void {
    this[ATTEMPT].streamError = error;
  };

  static readonly #onClose = function (this: AttemptStream): void {
    const { call, connection, responded, streamError, unfinished } = this[ATTEMPT];
    connection.release();
    if (H2Call.#current(this) === undefined) return;
    // S15: grpc-go's server gives up on a call at the deadline the bridge sent it
    // (grpc-timeout) by resetting the stream (RST_STREAM CANCEL) without a status. Once
    // that deadline has passed, the reset is the deadline, as grpc-go's client decides
    // (handleRSTStream): not a cancellation, nor a response cut short, whether it or the
    // bridge's own deadline timer comes first.
    if (this.rstCode === NGHTTP2_CANCEL && call.#deadlinePassed()) {
      call.#settle(resetAtDeadline());
      return;
    }
    if (unfinished !== undefined) {
      call.#settleUnlessLost(connection, streamError, fromGrpcStatus(Code.INTERNAL, unfinished, {}));
      return;
    }
    // Every stream id of the session is used up (2^31 - 1 of them): Node fails the
    // stream before sending it, and the session would fail all the next ones.
    if (streamError?.code === "ERR_HTTP2_OUT_OF_STREAMS") connection.retire();
    if (
      !responded &&
      call.#start.request !== undefined &&
      call.#attempts < MAX_UNSEEN_ATTEMPTS &&
      (this.rstCode === NGHTTP2_REFUSED_STREAM || connection.unseen(this.id))
    ) {
      // The process did not look at this stream (RFC 9113 §8.7): safe to send again.
      call.#stream = undefined;
      call.#open();
      return;
    }
    if (this.rstCode === NGHTTP2_NO_ERROR) {
      call.#settleUnlessLost(
        connection,
        streamError,
        fromGrpcStatus(Code.INTERNAL, "the process closed the stream without a grpc-status", {}),
      );
    } else call.#settle(closedWithoutStatus(this.rstCode, streamError, connection));
  };

  /**
   * Settles a stream that ended without a status: UNAVAILABLE if the connection went
   * with it, else `otherwise`. A process that dies may end or reset (NO_ERROR) its streams
   * before its connection visibly closes, so while the connection still looks sound a
   * PING asks (one per connection at a time, H2Connection.alive()): no answer because the
   * connection closed means it was lost.
   */
  #settleUnlessLost(
    connection: H2Connection,
    error: (Error & { code?: string }) | undefined,
    otherwise: BridgeError,
  ): void {
    const lost = connectionLost(error, connection);
    if (lost !== undefined) {
      this.#settle(lost);
      return;
    }
    void connection
      .alive()
      .then(({ alive, cause }) =>
        this.#settle(
          alive
            ? otherwise
            : fromGrpcStatus(Code.UNAVAILABLE, "lost the connection to the process", {}, cause),
        ),
      );
  }

  /** The final status, from trailers or a trailers-only response. */
  #finish(status: http2.IncomingHttpHeaders | undefined): void {
    const { error, trailers } = finalStatus(status);
    this.#settle(error, trailers);
  }

  #compressed(flag: number, bytes: Buffer, encoding: string | undefined): void {
    let message: Buffer;
    try {
      if (flag !== 1) {
        throw new BridgeError(Code.INTERNAL, Reason.PROCESS_FAULT, `message flag ${flag} is not 0 or 1`);
      }
      // Inflated under the same limit: a small reply that inflates to gigabytes fails the
      // call (RESOURCE_EXHAUSTED) after at most the limit's worth of memory.
      message = decompressKeepingForm(encoding, bytes, this.#start.maxReplyBytes, Reason.PROCESS_FAULT);
    } catch (error) {
      const failure = BridgeError.from(error, Code.INTERNAL, Reason.PROCESS_FAULT);
      this.cancel(
        fromGrpcStatus(
          failure.code === Code.RESOURCE_EXHAUSTED ? Code.RESOURCE_EXHAUSTED : Code.INTERNAL,
          `cannot read the process's response: ${failure.message}`,
          {},
          error,
        ),
      );
      return;
    }
    this.#start.listener.onMessage(message);
  }

  /** True once the call's deadline has passed (Date.now() counts whole milliseconds). */
  #deadlinePassed(): boolean {
    const { deadlineMs } = this.#start;
    return deadlineMs !== undefined && Date.now() >= Math.floor(deadlineMs);
  }

  /** Ends the call once: OK with trailers when `error` is undefined. */
  #settle(error: BridgeError | undefined, trailers: Metadata = {}): void {
    if (this.#done) return;
    this.#done = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#stopListening?.();
    const opening = this.#opening;
    this.#opening = undefined;
    if (opening !== undefined) for (const wake of opening) wake();
    if (error === undefined) this.#start.listener.onEnd(trailers);
    else this.#start.listener.onError(error);
  }
}
