import http from "node:http";
import http2 from "node:http2";
import net from "node:net";
import tls from "node:tls";
import { parseHostPort } from "../../bridge/config/addresses.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";

/** A request on either HTTP version: the adapter reads only what both have in common. */
export type HttpRequest = http.IncomingMessage | http2.Http2ServerRequest;
export type HttpResponse = http.ServerResponse | http2.Http2ServerResponse;

/** Handles one request; it must end the response exactly once and never throw. */
export type HttpHandler = (request: HttpRequest, response: HttpResponse) => void;

/**
 * Takes an HTTP/2 stream before the request/response layer sees it, when it wants it:
 * returns true when it took the stream (and then answers it), false to leave it to the
 * HttpHandler.
 */
export type Http2StreamClaim = (
  stream: http2.ServerHttp2Stream,
  headers: http2.IncomingHttpHeaders,
  rawHeaders: readonly string[],
) => boolean;

export interface HttpServerOptions {
  /** host:port; port 0 picks a free one. */
  readonly address: string;
  readonly handler: HttpHandler;
  /** HTTP/2 streams served outside the request/response layer (gRPC on this port). */
  readonly claimStream?: Http2StreamClaim | undefined;
  /** node:http2 server options (limits) for the HTTP/2 side. */
  readonly http2Options?: http2.ServerOptions | undefined;
  /** PEM certificate chain and key: the port speaks TLS, HTTP/1.1 and h2 chosen by ALPN. */
  readonly tls?: { readonly cert: Buffer; readonly key: Buffer } | undefined;
}

export interface HttpServer {
  readonly address: string;
  readonly port: number;
  /** True once drain() began: handlers answer new requests with UNAVAILABLE. */
  readonly draining: boolean;
  /**
   * Stops taking connections, lets requests in flight finish (HTTP/2 GOAWAY, HTTP/1.1
   * "Connection: close"), and destroys what is left after `graceMs`. Idempotent.
   */
  drain(graceMs: number): Promise<void>;
}

/** The HTTP/2 connection preface starts "PRI * HTTP/2.0": no HTTP/1.1 method starts "PRI". */
const H2_PREFACE = Buffer.from("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", "latin1");
/** Bytes a client may send before the first one tells the versions apart. */
const SNIFF_BYTES = 3;
/** How long a client may take to send its first bytes or finish the TLS handshake. */
const FIRST_BYTES_TIMEOUT_MS = 30_000;

/**
 * HTTP/1.1 and HTTP/2 over cleartext (h2c with prior knowledge) on one port: the first
 * bytes of each connection say which one it speaks, and the connection is handed to the
 * matching node server. Browsers and curl use HTTP/1.1; Connect and gRPC clients h2c.
 * With TLS, ALPN says which: "h2" goes to the HTTP/2 server, "http/1.1" or no ALPN at all
 * to the HTTP/1.1 one, the same two servers as in cleartext.
 */
export async function startHttpServer(options: HttpServerOptions): Promise<HttpServer> {
  let draining = false;
  const h1 = http.createServer({ requireHostHeader: false }, (request, response) => {
    // A draining server finishes this exchange, then closes the connection.
    if (draining) response.shouldKeepAlive = false;
    options.handler(request, response);
  });
  // Slow or idle clients must not hold sockets forever.
  h1.headersTimeout = 30_000;
  h1.requestTimeout = 0;
  h1.keepAliveTimeout = 5_000;
  const h2 = http2.createServer({
    ...options.http2Options,
    settings: { ...options.http2Options?.settings, enablePush: false },
  });
  h2.on("request", options.handler);
  const claim = options.claimStream;
  if (claim !== undefined) {
    // Adding the "request" listener made node:http2 add its request/response layer as a
    // "stream" listener. Streams go through the claim first; the rest reach that layer.
    const layers = h2.listeners("stream") as ((...args: unknown[]) => void)[];
    h2.removeAllListeners("stream");
    h2.on(
      "stream",
      (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, flags: number, raw: string[]) => {
        if (claim(stream, headers, raw)) return;
        for (const layer of layers) layer.call(h2, stream, headers, flags, raw);
      },
    );
  }
  const sessions = new Set<http2.ServerHttp2Session>();
  h2.on("session", (session: http2.ServerHttp2Session) => {
    sessions.add(session);
    session.once("close", () => sessions.delete(session));
    // A broken connection is the client's problem; it must not crash the bridge.
    session.on("error", () => {});
  });
  h1.on("clientError", (_error, socket: net.Socket) => {
    if (socket.writable) socket.end("HTTP/1.1 400 Bad Request\r\nConnection: close\r\n\r\n");
    else socket.destroy();
  });

  const sockets = new Set<net.Socket>();
  const track = (socket: net.Socket): void => {
    sockets.add(socket);
    socket.once("close", () => sockets.delete(socket));
    socket.on("error", () => socket.destroy());
  };
  const server =
    options.tls === undefined
      ? net.createServer((socket) => {
          track(socket);
          sniff(socket, (isH2) => {
            (isH2 ? h2 : h1).emit("connection", socket);
            // The HTTP/1.1 parser reads the bytes put back only once the socket flows again.
            if (!isH2) socket.resume();
          });
        })
      : tls.createServer(
          {
            cert: options.tls.cert,
            key: options.tls.key,
            ALPNProtocols: ["h2", "http/1.1"],
            handshakeTimeout: FIRST_BYTES_TIMEOUT_MS,
          },
          (socket) => {
            track(socket);
            (socket.alpnProtocol === "h2" ? h2 : h1).emit("connection", socket);
          },
        );
  if (server instanceof tls.Server) {
    // A failed handshake (a cleartext client, a bad certificate) ends that socket only.
    server.on("tlsClientError", (_error, socket) => socket.destroy());
  }
  const parsed = parseHostPort(options.address, 0);
  if ("problem" in parsed) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_CONFIG,
      `http listener address ${JSON.stringify(options.address)}: ${parsed.problem}`,
    );
  }
  const { host, port } = parsed;
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, host, () => {
      server.off("error", reject);
      resolve();
    });
  });
  const bound = (server.address() as net.AddressInfo).port;
  let drained: Promise<void> | undefined;
  return {
    address: `${host.includes(":") ? `[${host}]` : host}:${bound}`,
    port: bound,
    get draining() {
      return draining;
    },
    drain(graceMs) {
      drained ??= (async () => {
        draining = true;
        const closed = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const session of sessions) session.close();
        h1.closeIdleConnections();
        const timer = setTimeout(() => {
          for (const socket of sockets) socket.destroy();
        }, graceMs);
        timer.unref();
        await closed;
        clearTimeout(timer);
      })();
      return drained;
    },
  };
}

/**
 * Waits for the first bytes, puts them back, and says whether they start the HTTP/2
 * preface. A client that sends nothing is timed out instead of holding a socket.
 */
function sniff(socket: net.Socket, route: (isH2: boolean) => void): void {
  let seen = Buffer.alloc(0);
  socket.setTimeout(FIRST_BYTES_TIMEOUT_MS, () => socket.destroy());
  const onData = (chunk: Buffer): void => {
    seen = Buffer.concat([seen, chunk]);
    if (seen.length < SNIFF_BYTES) return;
    socket.off("data", onData);
    socket.pause();
    socket.setTimeout(0);
    socket.unshift(seen);
    route(seen.subarray(0, SNIFF_BYTES).equals(H2_PREFACE.subarray(0, SNIFF_BYTES)));
  };
  socket.on("data", onData);
}
