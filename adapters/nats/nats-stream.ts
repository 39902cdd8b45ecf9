import {
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  headers as natsHeaders,
  type Subscription,
} from "@nats-io/transport-node";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";

/**
 * Server streaming over NATS request-reply (docs/nats.md "Streaming"): the same framing
 * whoever serves the stream — the bridge to a NATS client, a NATS process to the bridge,
 * an owner replica to the replica that forwarded the call. The reply subject of the
 * request receives, in order, one `head` (the session facts, S1, and the subject where
 * the requester sends acks and cancels), one `msg` per response message, and one `end`
 * (the status, success or the fault headers of S14, and the trailers). A server sends at
 * most `window` messages beyond what the requester acked, so neither side buffers more
 * than a window (DESIGN §7, robustness).
 */
export const StreamHeader = {
  /** `head`, `msg` or `end`: what this reply message is. */
  kind: "sb-stream",
  /** The 1-based number of a `msg`. */
  seq: "sb-stream-seq",
  /** On `head`: where the requester publishes acks and cancels. */
  control: "sb-stream-control",
  /** On the request: how many unacked messages the requester holds at most. */
  window: "sb-stream-window",
  /** On a control message: the number of messages the requester has consumed. */
  ack: "sb-stream-ack",
  /** On a control message: the requester stops; the server cancels the call. */
  cancel: "sb-stream-cancel",
} as const;

export type StreamKind = "head" | "msg" | "end";

/** The window a requester that names none gets, and the largest a server grants. */
export const DEFAULT_STREAM_WINDOW = 64;
export const MAX_STREAM_WINDOW = 1024;
/** How long a server waits, its window full, for an ack before it gives the stream up. */
export const DEFAULT_STREAM_ACK_TIMEOUT_MS = 30_000;

const WINDOW = /^[0-9]{1,5}$/;
const COUNT = /^[0-9]{1,15}$/;

/** The window a request asks for (sb-stream-window), clamped to 1..MAX_STREAM_WINDOW. */
export function requestedWindow(value: string | undefined): number {
  if (value === undefined) return DEFAULT_STREAM_WINDOW;
  if (!WINDOW.test(value) || Number(value) < 1) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_REQUEST,
      `${StreamHeader.window} must be a positive integer, got ${JSON.stringify(value.slice(0, 16))}`,
    );
  }
  return Math.min(Number(value), MAX_STREAM_WINDOW);
}

/** What kind of stream message `hdrs` marks, or undefined for a plain (non-stream) reply. */
export function streamKindOf(hdrs: MsgHdrs | undefined): StreamKind | undefined {
  const kind = hdrs?.get(StreamHeader.kind);
  return kind === "head" || kind === "msg" || kind === "end" ? kind : undefined;
}

export interface StreamReplierOptions {
  readonly connection: NatsConnection;
  /** The requester's reply subject. */
  readonly reply: string;
  readonly window: number;
  readonly ackTimeoutMs: number;
  /**
   * Aborted with CANCELLED when the requester cancels, and with RESOURCE_EXHAUSTED when
   * it stops acking: the call behind the stream ends with it.
   */
  readonly abort: (reason: BridgeError) => void;
}

/**
 * The serving side of one stream: sends head, msgs and end on the requester's reply
 * subject and reads the requester's acks and cancel on a subject of its own. send()
 * waits while the window is full, so the producer behind it (the engine, the process) is
 * not pulled faster than the requester consumes; a requester that is gone (no acks for
 * ackTimeoutMs) fails the stream rather than growing anything.
 */
export class StreamReplier {
  readonly #options: StreamReplierOptions;
  readonly #control: Subscription;
  readonly #controlSubject: string;
  #sent = 0;
  #acked = 0;
  #headSent = false;
  #ended = false;
  #failure: BridgeError | undefined;
  #wake: (() => void) | undefined;

  constructor(options: StreamReplierOptions) {
    this.#options = options;
    this.#controlSubject = createInbox();
    this.#control = options.connection.subscribe(this.#controlSubject, {
      callback: (error, msg) => {
        if (error === null) this.#onControl(msg);
      },
    });
  }

  get headSent(): boolean {
    return this.#headSent;
  }

  /** The head: the session facts (S1) and the control subject. Sent once, before any msg. */
  head(fields: Readonly<Record<string, string>>, extra?: MsgHdrs): void {
    if (this.#headSent || this.#ended) return;
    this.#headSent = true;
    const hdrs = extra ?? natsHeaders();
    for (const [key, value] of Object.entries(fields)) hdrs.set(key, value);
    hdrs.set(StreamHeader.kind, "head");
    hdrs.set(StreamHeader.control, this.#controlSubject);
    this.#options.connection.publish(this.#options.reply, new Uint8Array(0), { headers: hdrs });
  }

  /** One response message; waits while `window` messages are unacked (backpressure). */
  async send(payload: Uint8Array, hdrs: MsgHdrs = natsHeaders()): Promise<void> {
    while (this.#failure === undefined && this.#sent - this.#acked >= this.#options.window) {
      await this.#waitForAck();
    }
    if (this.#failure !== undefined) throw this.#failure;
    this.#sent += 1;
    hdrs.set(StreamHeader.kind, "msg");
    hdrs.set(StreamHeader.seq, String(this.#sent));
    this.#options.connection.publish(this.#options.reply, payload, { headers: hdrs });
  }

  /** The end: the status and trailers, as `hdrs` say (fault headers or none). Idempotent. */
  end(hdrs: MsgHdrs): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#wake?.();
    this.#control.unsubscribe();
    hdrs.set(StreamHeader.kind, "end");
    try {
      this.#options.connection.publish(this.#options.reply, new Uint8Array(0), { headers: hdrs });
    } catch {
      // The connection is closed: nobody can be told, and nothing is held.
    }
  }

  #onControl(msg: Msg): void {
    if (msg.headers?.has(StreamHeader.cancel) === true) {
      this.#fail(new BridgeError(Code.CANCELLED, Reason.CANCELLED, "the requester cancelled the stream"));
      return;
    }
    const text = msg.headers?.get(StreamHeader.ack) ?? "";
    if (!COUNT.test(text)) return;
    // Acks only move forward and never past what was sent: a stray or replayed ack is harmless.
    const acked = Math.min(Number(text), this.#sent);
    if (acked > this.#acked) {
      this.#acked = acked;
      this.#wake?.();
    }
  }

  #fail(error: BridgeError): void {
    if (this.#failure !== undefined || this.#ended) return;
    this.#failure = error;
    this.#wake?.();
    this.#options.abort(error);
  }

  #waitForAck(): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.#fail(
          new BridgeError(
            Code.RESOURCE_EXHAUSTED,
            Reason.CANCELLED,
            `the requester acked nothing for ${this.#options.ackTimeoutMs} ms with ${this.#options.window} messages unacked; the stream is given up`,
            { metadata: { window: String(this.#options.window) } },
          ),
        );
      }, this.#options.ackTimeoutMs);
      timer.unref();
      this.#wake = () => {
        clearTimeout(timer);
        this.#wake = undefined;
        resolve();
      };
    });
  }
}

export interface StreamRequestOptions {
  readonly headers: MsgHdrs;
  readonly window: number;
  /** The whole stream must end within this time (the caller's deadline, S15). */
  readonly timeoutMs: number;
  readonly signal: AbortSignal;
  /** Largest payload accepted in one msg. */
  readonly maxPayloadBytes: number;
  /** The failure for no responders on the subject. */
  readonly noResponders: () => BridgeError;
  /** The failure when timeoutMs passes. */
  readonly timedOut: () => BridgeError;
}

/** One message of a stream as the requester reads it. */
export interface StreamFrame {
  readonly kind: StreamKind;
  readonly msg: Msg;
}

/**
 * The requesting side: publishes the request with a reply subject of its own and yields
 * head, msgs and end in order. It acks each half window consumed, so a server following
 * the framing never sends more than `window` ahead; one that does is failed
 * (RESOURCE_EXHAUSTED) instead of buffered. Leaving the iteration early, or `signal`,
 * sends a cancel. A plain reply (no sb-stream header: a fault from a server that refused
 * the call before streaming, or no responders) is yielded as an `end`.
 */
export async function* requestStream(
  connection: NatsConnection,
  subject: string,
  payload: Uint8Array,
  options: StreamRequestOptions,
): AsyncGenerator<StreamFrame> {
  const inbox = createInbox();
  const queue: StreamFrame[] = [];
  let failure: BridgeError | undefined;
  let wake: (() => void) | undefined;
  let control: string | undefined;
  let received = 0;
  let consumed = 0;
  let lastAck = 0;
  let ended = false;
  const limit = options.window;
  const fail = (error: BridgeError): void => {
    failure ??= error;
    wake?.();
  };
  const sub = connection.subscribe(inbox, {
    callback: (error, msg) => {
      if (error !== null) {
        fail(BridgeError.from(error));
        return;
      }
      if (failure !== undefined || ended) return;
      const kind = streamKindOf(msg.headers);
      if (kind === undefined && msg.headers?.code === 503) {
        fail(options.noResponders());
        return;
      }
      if (kind === "msg") {
        received += 1;
        // The server may run `window` ahead of the acks; more is a broken peer, not a buffer.
        if (received - consumed > limit) {
          fail(
            new BridgeError(
              Code.RESOURCE_EXHAUSTED,
              Reason.PROCESS_FAULT,
              `${subject} sent more than the window of ${limit} unacked stream messages`,
            ),
          );
          return;
        }
        if (msg.data.byteLength > options.maxPayloadBytes) {
          fail(
            new BridgeError(
              Code.RESOURCE_EXHAUSTED,
              Reason.PROCESS_FAULT,
              `${subject} sent a stream message of ${msg.data.byteLength} bytes, over the limit of ${options.maxPayloadBytes}`,
            ),
          );
          return;
        }
      } else if (kind === "head") {
        if (control !== undefined || received > 0) return; // one head, first
        control = msg.headers?.get(StreamHeader.control) || undefined;
      }
      queue.push({ kind: kind ?? "end", msg });
      wake?.();
    },
  });
  const timer = setTimeout(() => fail(options.timedOut()), options.timeoutMs);
  timer.unref();
  const onAbort = (): void => fail(BridgeError.from(options.signal.reason));
  options.signal.addEventListener("abort", onAbort, { once: true });
  let finished = false;
  try {
    options.signal.throwIfAborted();
    options.headers.set(StreamHeader.window, String(limit));
    connection.publish(subject, payload, { reply: inbox, headers: options.headers });
    while (true) {
      // A failure (overflow, deadline, abort) ends the stream at once; what is queued is dropped.
      if (failure !== undefined) throw failure;
      const frame = queue.shift();
      if (frame === undefined) {
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
        continue;
      }
      if (frame.kind === "end") {
        ended = true;
        finished = true;
        yield frame;
        return;
      }
      yield frame;
      if (frame.kind === "msg") {
        consumed += 1;
        // Acks every half window: the server rarely waits, and at most a window is held.
        if (control !== undefined && consumed - lastAck >= Math.max(1, Math.floor(limit / 2))) {
          lastAck = consumed;
          const hdrs = natsHeaders();
          hdrs.set(StreamHeader.ack, String(consumed));
          connection.publish(control, new Uint8Array(0), { headers: hdrs });
        }
      }
    }
  } finally {
    clearTimeout(timer);
    options.signal.removeEventListener("abort", onAbort);
    sub.unsubscribe();
    if (!finished && control !== undefined && !connection.isClosed()) {
      // Left early (a failure, the caller stopped): the server cancels the call behind it.
      const hdrs = natsHeaders();
      hdrs.set(StreamHeader.cancel, "1");
      try {
        connection.publish(control, new Uint8Array(0), { headers: hdrs });
      } catch {
        // Closed meanwhile: the server gives the stream up when no ack comes.
      }
    }
  }
}
