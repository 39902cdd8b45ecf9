import http2 from "node:http2";
import { parseGrpcTimeout } from "../../adapters/grpc/grpc-wire-headers.js";
import { decodeStatus } from "../../bridge/errors/rich-status.js";
import { type LabCall, type LabOutcome, type LabTransport, unavailable } from "./lab-wire.js";

/** Largest response message the runner buffers; a bigger one fails the call, never the runner. */
const MAX_MESSAGE_BYTES = 16 * 1024 * 1024;

/**
 * gRPC over raw HTTP/2, so the runner sends `grpc-timeout` in exactly the unit a case names
 * (S15: every unit) and sees every header and trailer as it came.
 */
export function createGrpcLabTransport(address: string): LabTransport {
  let session: http2.ClientHttp2Session | undefined;
  const connect = (): http2.ClientHttp2Session => {
    if (session === undefined || session.closed || session.destroyed) {
      const opened = http2.connect(`http://${address}`);
      // A broken connection fails the calls on it; it must never crash the runner.
      opened.on("error", () => undefined);
      opened.on("close", () => {
        if (session === opened) session = undefined;
      });
      session = opened;
    }
    return session;
  };
  return {
    name: "grpc",
    call: (call) => grpcCall(connect(), call),
    async close() {
      const s = session;
      session = undefined;
      if (s !== undefined && !s.closed) await new Promise<void>((resolve) => s.close(() => resolve()));
    },
  };
}

function grpcCall(session: http2.ClientHttp2Session, call: LabCall): Promise<LabOutcome> {
  return new Promise((resolve) => {
    const headers: http2.OutgoingHttpHeaders = {
      ":method": "POST",
      ":path": `/${call.service}/${call.method}`,
      "content-type": "application/grpc",
      te: "trailers",
      ...call.metadata,
    };
    if (call.timeout !== undefined) headers["grpc-timeout"] = call.timeout;
    let stream: http2.ClientHttp2Stream;
    try {
      stream = session.request(headers, call.signal === undefined ? {} : { signal: call.signal });
    } catch (error) {
      call.onSent?.();
      resolve(unavailable(`gRPC request failed: ${String(error)}`));
      return;
    }
    // Like every gRPC client, the runner keeps the deadline itself: a server may just reset
    // the stream when it gives up (grpc-go and grpc-java do), and the caller's answer is
    // then DEADLINE_EXCEEDED, not a broken stream.
    const deadlineAt = call.timeout === undefined ? undefined : parseGrpcTimeout(call.timeout, Date.now());
    let deadlinePassed = false;
    const deadlineTimer =
      deadlineAt === undefined
        ? undefined
        : setTimeout(
            () => {
              deadlinePassed = true;
              stream.close(http2.constants.NGHTTP2_CANCEL);
            },
            Math.max(0, deadlineAt - Date.now()),
          );
    let responseHeaders: Record<string, string> = {};
    let trailers: Record<string, string> = {};
    const chunks: Buffer[] = [];
    let buffered = 0;
    let failure: string | undefined;
    stream.on("response", (h) => {
      responseHeaders = flatten(h);
    });
    stream.on("trailers", (t) => {
      trailers = flatten(t);
    });
    stream.on("data", (chunk: Buffer) => {
      buffered += chunk.length;
      if (buffered > MAX_MESSAGE_BYTES + 5) {
        failure = "response larger than the runner accepts";
        stream.close(http2.constants.NGHTTP2_CANCEL);
        return;
      }
      chunks.push(chunk);
    });
    stream.on("error", (error) => {
      failure ??= String(error);
    });
    stream.on("close", () => {
      if (deadlineTimer !== undefined) clearTimeout(deadlineTimer);
      if (call.signal?.aborted === true) {
        resolve({
          code: 1,
          message: "cancelled by the runner",
          details: [],
          headers: {},
          trailers: {},
          messages: [],
        });
        return;
      }
      // A trailers-only response carries the status in its headers.
      const statusSource = trailers["grpc-status"] !== undefined ? trailers : responseHeaders;
      const status = statusSource["grpc-status"];
      if (
        status === undefined &&
        (deadlinePassed || (deadlineAt !== undefined && Date.now() >= deadlineAt))
      ) {
        resolve({
          code: 4,
          message: "deadline exceeded (the runner's own deadline)",
          details: [],
          headers: {},
          trailers: {},
          messages: [],
        });
        return;
      }
      if (status === undefined) {
        resolve(unavailable(failure ?? `no grpc-status (HTTP ${responseHeaders[":status"] ?? "?"})`));
        return;
      }
      const messages = unframe(Buffer.concat(chunks));
      const rawDetails = statusSource["grpc-status-details-bin"];
      const details = rawDetails === undefined ? [] : decodeStatus(Buffer.from(rawDetails, "base64")).details;
      const { ":status": _, ...plainHeaders } = responseHeaders;
      resolve({
        code: Number(status),
        message: decodeGrpcMessage(statusSource["grpc-message"] ?? ""),
        details,
        headers: plainHeaders,
        trailers: statusSource === trailers ? trailers : {},
        messages: messages ?? [],
      });
    });
    const frame = Buffer.alloc(5 + call.request.length);
    frame.writeUInt32BE(call.request.length, 1);
    frame.set(call.request, 5);
    stream.end(frame, () => call.onSent?.());
  });
}

function flatten(h: http2.IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(h)) {
    if (value === undefined) continue;
    out[key.toLowerCase()] = Array.isArray(value) ? value.join(",") : String(value);
  }
  return out;
}

/** Splits length-prefixed gRPC messages; undefined when the framing is broken. */
function unframe(bytes: Buffer): Uint8Array[] | undefined {
  const out: Uint8Array[] = [];
  let at = 0;
  while (at + 5 <= bytes.length) {
    const length = bytes.readUInt32BE(at + 1);
    if (at + 5 + length > bytes.length) return undefined;
    out.push(bytes.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  return at === bytes.length ? out : undefined;
}

/** grpc-message is percent-encoded UTF-8 (gRPC HTTP/2 protocol). */
function decodeGrpcMessage(value: string): string {
  try {
    return decodeURIComponent(value);
  } catch {
    return value;
  }
}
