import http2 from "node:http2";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { acceptedEncodings } from "./grpc-compression.js";

/**
 * More sessions than this to one process only when each is at the process's
 * SETTINGS_MAX_CONCURRENT_STREAMS; past it, calls queue in nghttp2 (which holds a stream's
 * HEADERS back until the peer has room) on the least busy session.
 */
const MAX_SESSIONS = 8;

/** How long close() lets calls still in flight finish before it cuts the connections. */
const CLOSE_GRACE_MS = 1000;

const SESSION_OPTIONS: http2.ClientSessionOptions = {
  settings: { enablePush: false },
  // Node refuses new streams (ENHANCE_YOUR_CALM) once a session holds more than
  // maxSessionMemory of unsent and unread data, which a busy bridge reaches with ordinary
  // calls; grpc-js lifts the limit for the same reason. Flow control bounds the memory.
  maxSessionMemory: Number.MAX_SAFE_INTEGER,
  maxSendHeaderBlockLength: Number.MAX_SAFE_INTEGER,
};

/**
 * One HTTP/2 session to a process. Calls hold it while they use it: a session with
 * calls keeps the event loop alive, an idle one does not, so an idle bridge can exit.
 */
export class H2Connection {
  readonly session: http2.ClientHttp2Session;
  /** Calls holding this session: streams open on it plus calls waiting for it to be ready. */
  #held = 0;
  #ready = false;
  /** False once the session closes, fails or is told to go away: no new streams. */
  #usable = true;
  /** From GOAWAY: streams above this id were never seen by the process. */
  #lastStreamId: number | undefined;
  readonly #whenReady: Promise<H2Connection>;
  readonly #onGone: (connection: H2Connection) => void;
  /** The PING out now, shared by every call that asks (alive()). */
  #probe: Promise<{ readonly alive: boolean; readonly cause?: unknown }> | undefined;

  constructor(authority: string, connectTimeoutMs: number, onGone: (connection: H2Connection) => void) {
    this.#onGone = onGone;
    const session = http2.connect(`http://${authority}`, SESSION_OPTIONS);
    this.session = session;
    let failure: Error | undefined;
    // A peer that takes the TCP connection but never speaks HTTP/2 would hold every call
    // without a deadline forever.
    const giveUp = setTimeout(
      () => session.destroy(new Error(`no HTTP/2 settings within ${connectTimeoutMs} ms`)),
      connectTimeoutMs,
    );
    giveUp.unref();
    this.#whenReady = new Promise<H2Connection>((resolve, reject) => {
      // Ready once the process's SETTINGS are in: before that nghttp2 assumes a limit of
      // 100 streams and a process with a lower one refuses the excess (REFUSED_STREAM).
      session.once("remoteSettings", () => {
        clearTimeout(giveUp);
        this.#ready = true;
        resolve(this);
      });
      session.on("error", (error: Error) => {
        failure ??= error;
      });
      session.once("close", () => {
        clearTimeout(giveUp);
        this.#usable = false;
        onGone(this);
        if (!this.#ready) {
          const cause = failure?.message ?? "the connection closed before the process sent its settings";
          reject(
            new BridgeError(
              Code.UNAVAILABLE,
              Reason.PROCESS_UNAVAILABLE,
              `cannot reach ${authority}: ${cause}`,
              {
                cause: failure,
              },
            ),
          );
        }
      });
    });
    // A rejection nobody waits for (every waiting call gave up) must not crash the bridge.
    this.#whenReady.catch(() => {});
    // GOAWAY: calls already accepted finish here, new ones go to a new session.
    session.on("goaway", (_code: number, lastStreamId: number) => {
      this.#usable = false;
      this.#lastStreamId = lastStreamId;
      onGone(this);
    });
  }

  get usable(): boolean {
    return this.#usable && !this.session.closed && !this.session.destroyed;
  }

  get ready(): boolean {
    return this.#ready;
  }

  get held(): number {
    return this.#held;
  }

  /**
   * True when the process said (GOAWAY) it never looked at this stream, or the stream
   * never got an id: sending the request again cannot do the work twice.
   */
  unseen(streamId: number | undefined): boolean {
    return streamId === undefined || (this.#lastStreamId !== undefined && streamId > this.#lastStreamId);
  }

  /** True while it may take another stream without waiting for one to finish. */
  get hasRoom(): boolean {
    return !this.#ready || this.#held < (this.session.remoteSettings.maxConcurrentStreams ?? Infinity);
  }

  /** Resolves once the session can take streams; rejects with UNAVAILABLE if it never will. */
  whenReady(): Promise<H2Connection> {
    return this.#whenReady;
  }

  hold(): void {
    if (this.#held++ === 0) this.session.ref();
  }

  release(): void {
    if (--this.#held === 0) this.session.unref();
  }

  /**
   * Whether the connection still answers, by one PING shared by every call that asks while
   * it is out. grpc-go servers answer more than two PINGs that arrive without anything
   * sent back in between with GOAWAY ENHANCE_YOUR_CALM ("too_many_pings", their keepalive
   * enforcement) and close the connection, failing every call on it: one PING per call
   * that asked in the same moment cut a few thousand calls at once under load.
   */
  alive(): Promise<{ readonly alive: boolean; readonly cause?: unknown }> {
    if (this.#probe !== undefined) return this.#probe;
    const probe = new Promise<{ readonly alive: boolean; readonly cause?: unknown }>((resolve) => {
      try {
        const sent = this.session.ping((error) =>
          resolve(error === null && this.usable ? { alive: true } : { alive: false, cause: error }),
        );
        // Too many PINGs already outstanding: the connection is busy, so alive.
        if (!sent) resolve({ alive: true });
      } catch (error) {
        resolve({ alive: false, cause: error });
      }
    });
    this.#probe = probe;
    void probe.then(() => {
      if (this.#probe === probe) this.#probe = undefined;
    });
    return probe;
  }

  /** Takes no new streams from now on; those open on it finish. */
  retire(): void {
    if (!this.#usable) return;
    this.#usable = false;
    this.#onGone(this);
    if (!this.session.closed) this.session.close();
  }

  /** Closes after the streams open on it finish, or cuts it after `graceMs`. */
  close(graceMs: number): Promise<void> {
    const session = this.session;
    if (session.destroyed) return Promise.resolve();
    return new Promise<void>((resolve) => {
      const cut = setTimeout(() => session.destroy(), graceMs);
      session.once("close", () => {
        clearTimeout(cut);
        resolve();
      });
      if (!session.closed) session.close();
    });
  }
}

/**
 * The HTTP/2 sessions to one process location, opened lazily and reused by every call.
 * A session that closes, fails or receives GOAWAY leaves the pool; the next call opens a
 * new one. Usually there is exactly one.
 */
export class H2ConnectionPool {
  readonly #authority: string;
  readonly #connectTimeoutMs: number;
  #connections: H2Connection[] = [];
  #closed = false;
  /**
   * The encodings the process said it reads (grpc-accept-encoding of its last response),
   * identity aside; undefined while it has said nothing (grpc-go servers never do).
   */
  #accepts: ReadonlySet<string> | undefined;
  #acceptHeader: string | undefined;

  get accepts(): ReadonlySet<string> | undefined {
    return this.#accepts;
  }

  /** Notes the process's grpc-accept-encoding, from the headers of one of its responses. */
  learnAccepts(header: string | string[] | undefined): void {
    if (typeof header !== "string" || header === this.#acceptHeader) return;
    this.#acceptHeader = header;
    this.#accepts = acceptedEncodings(header);
  }

  constructor(authority: string, connectTimeoutMs: number) {
    this.#authority = authority;
    this.#connectTimeoutMs = connectTimeoutMs;
  }

  /**
   * A session for one new call, held for it (the caller releases it when its stream
   * closes): at once when one is ready, else once the new one is.
   */
  acquire(): H2Connection | Promise<H2Connection> {
    if (this.#closed) {
      throw new BridgeError(
        Code.UNAVAILABLE,
        Reason.PROCESS_UNAVAILABLE,
        `the connection to ${this.#authority} is closed`,
      );
    }
    let chosen: H2Connection | undefined;
    let leastBusy: H2Connection | undefined;
    for (const connection of this.#connections) {
      if (!connection.usable) continue;
      if (connection.hasRoom) {
        chosen = connection;
        break;
      }
      if (leastBusy === undefined || connection.held < leastBusy.held) leastBusy = connection;
    }
    if (chosen === undefined) {
      if (leastBusy !== undefined && this.#connections.length >= MAX_SESSIONS) chosen = leastBusy;
      else {
        chosen = new H2Connection(this.#authority, this.#connectTimeoutMs, (gone) => this.#forget(gone));
        this.#connections.push(chosen);
      }
    }
    chosen.hold();
    return chosen.ready ? chosen : chosen.whenReady();
  }

  /** Closes every session (idempotent); calls in flight get a short grace. */
  async close(): Promise<void> {
    this.#closed = true;
    const connections = this.#connections;
    this.#connections = [];
    await Promise.all(connections.map((c) => c.close(CLOSE_GRACE_MS)));
  }

  #forget(connection: H2Connection): void {
    const at = this.#connections.indexOf(connection);
    if (at >= 0) this.#connections.splice(at, 1);
  }
}
