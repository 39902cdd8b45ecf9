import http2 from "node:http2";
// Every field node:http2 adds, present from the start: the generator's own pauses would
// otherwise land in every row's latency (h2-request-options.ts).
import { REQUEST_OPTIONS } from "../adapters/grpc/h2-request-options.js";

/** Called once per call: undefined on success, otherwise what went wrong. */
export type CallDone = (failure: string | undefined) => void;

/**
 * A minimal gRPC unary client on raw node:http2: a few connections, requests framed by the
 * caller, responses checked for HTTP 200, grpc-status 0 in the trailers (or in the headers
 * of a trailers-only response) and the expected reply size. It does far less per call than
 * @grpc/grpc-js (no interceptors, no metadata objects, no per-call promise), so the load
 * generator stays the cheapest process on the machine.
 */
export interface H2Pool {
  readonly connections: number;
  /** `headers`: extra request headers (e.g. idempotency-key); the common case passes none. */
  unary(
    connection: number,
    path: string,
    frame: Buffer,
    expectedBytes: number,
    done: CallDone,
    headers?: http2.OutgoingHttpHeaders,
  ): void;
  close(): Promise<void>;
}

const { HTTP2_HEADER_STATUS } = http2.constants;

export async function connectPool(target: string, connections: number): Promise<H2Pool> {
  const sessions = await openSessions(target, connections);
  const headersFor = headersByPath({ "content-type": "application/grpc", te: "trailers" });

  return {
    connections,
    unary(connection, path, frame, expectedBytes, done, headers) {
      const session = sessions[connection % connections] as http2.ClientHttp2Session;
      let received = 0;
      let status: string | undefined;
      let message: string | undefined;
      let failure: string | undefined;
      const base = headersFor(path);
      const stream = session.request(headers === undefined ? base : { ...base, ...headers }, REQUEST_OPTIONS);
      stream.on("response", (headers) => {
        const code = headers[HTTP2_HEADER_STATUS];
        if (Number(code) !== 200) failure = `HTTP ${String(code)}`;
        // A trailers-only response carries the status in the headers.
        const inline = headers["grpc-status"];
        if (typeof inline === "string") {
          status = inline;
          message = grpcMessage(headers["grpc-message"]);
        }
      });
      stream.on("data", (chunk: Buffer) => {
        received += chunk.length;
      });
      stream.on("trailers", (trailers) => {
        const trailing = trailers["grpc-status"];
        if (typeof trailing === "string") {
          status = trailing;
          message = grpcMessage(trailers["grpc-message"]);
        }
      });
      stream.on("error", (error: Error) => {
        failure ??= error.message;
      });
      stream.on("close", () => {
        if (failure === undefined) {
          if (status === undefined) failure = "no grpc-status";
          else if (status !== "0")
            failure = message === undefined ? `grpc-status ${status}` : `grpc-status ${status} (${message})`;
          else if (received !== expectedBytes)
            failure = `reply of ${received} bytes, expected ${expectedBytes}`;
        }
        done(failure);
      });
      stream.end(frame);
    },
    close: () => closeSessions(sessions),
  };
}

/** grpc-message, percent-decoded and cut short, so an error tally says what failed. */
function grpcMessage(value: string | string[] | undefined): string | undefined {
  if (typeof value !== "string" || value === "") return undefined;
  let text = value;
  try {
    text = decodeURIComponent(value);
  } catch {
    // Not percent-encoded after all: shown as it came.
  }
  return text.length > 160 ? `${text.slice(0, 160)}…` : text;
}

/** Several targets (comma-separated): connection i goes to target i mod n. */
export function openSessions(target: string, connections: number): Promise<http2.ClientHttp2Session[]> {
  const targets = target.split(",");
  return Promise.all(
    Array.from({ length: connections }, (_, i) => connect(targets[i % targets.length] as string)),
  );
}

/** A POST's headers per path, built once per path: the calls of a row share a few paths. */
export function headersByPath(fixed: http2.OutgoingHttpHeaders): (path: string) => http2.OutgoingHttpHeaders {
  const byPath = new Map<string, http2.OutgoingHttpHeaders>();
  return (path) => {
    let headers = byPath.get(path);
    if (headers === undefined) {
      headers = { ":method": "POST", ":path": path, ...fixed };
      byPath.set(path, headers);
    }
    return headers;
  };
}

export async function closeSessions(sessions: readonly http2.ClientHttp2Session[]): Promise<void> {
  await Promise.all(
    sessions.map(
      (session) =>
        new Promise<void>((resolve) => {
          if (session.closed || session.destroyed) return resolve();
          // Calls a dead server never answers must not keep the generator alive.
          const force = setTimeout(() => session.destroy(), 1000);
          session.close(() => {
            clearTimeout(force);
            resolve();
          });
        }),
    ),
  );
}

function connect(target: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${target}`, {
      // Large windows: flow control should never be what limits a 1 KB echo.
      settings: { enablePush: false, initialWindowSize: 1 << 20 },
    });
    session.once("error", reject);
    session.once("connect", () => {
      session.off("error", reject);
      session.on("error", () => {
        // Failures surface on the streams; a broken connection fails every call on it.
      });
      session.setLocalWindowSize(16 << 20);
      resolve(session);
    });
  });
}
