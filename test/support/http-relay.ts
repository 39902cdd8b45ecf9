import http from "node:http";
import type { AddressInfo } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { type ConnectErrorJson, connectErrorJson } from "../../adapters/http/connect-error.js";
import { END_STREAM_FLAG, frameEnvelope } from "../../adapters/http/connect-framing.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { codeFromNumber } from "../../bridge/errors/code.js";
import { httpStatusOf } from "../../bridge/errors/http-status.js";
import { decodeStatus } from "../../bridge/errors/rich-status.js";

const identity = (bytes: Buffer): Buffer => bytes;
const DETAILS_KEY = "grpc-status-details-bin";
/** Request headers of HTTP and the Connect protocol itself, which are not call metadata. */
const TRANSPORT_HEADERS = new Set([
  "host",
  "connection",
  "content-type",
  "content-length",
  "transfer-encoding",
  "accept-encoding",
  "user-agent",
  "te",
  "keep-alive",
]);

/** The lab process as a Connect (HTTP) process: what the rule suites need to run with HTTP outbound. */
export interface HttpRelay {
  /** http://127.0.0.1:PORT */
  readonly url: string;
  close(): Promise<void>;
}

/**
 * Serves the lab services over the Connect protocol, the way an HTTP process answers the
 * bridge (docs/http.md, "Outbound"), by calling the lab process's gRPC method with what
 * the request carried: the payload, every header as metadata and Connect-Timeout-Ms as
 * the deadline. Unary calls answer application/proto with the lab's trailers as
 * `trailer-` headers, or a Connect error (the table's HTTP status, the details of the
 * lab's rich status); server streams answer in the Connect streaming format. A caller that
 * goes away cancels the gRPC call, so the lab process sees cancellation as it would
 * directly. The lab process keeps its whole behaviour, so the rule suites run unchanged.
 */
export async function startHttpRelay(labPort: number): Promise<HttpRelay> {
  const client = new grpc.Client(`127.0.0.1:${labPort}`, grpc.credentials.createInsecure());
  const server = http.createServer((request, response) => {
    const chunks: Buffer[] = [];
    request.on("data", (c: Buffer) => chunks.push(c));
    request.on("end", () => relay(request, response, Buffer.concat(chunks)));
  });

  function relay(request: http.IncomingMessage, response: http.ServerResponse, body: Buffer): void {
    const md = new grpc.Metadata();
    let timeoutMs: number | undefined;
    for (const [key, value] of Object.entries(request.headers)) {
      if (value === undefined) continue;
      if (key === "connect-timeout-ms") timeoutMs = Number(value);
      if (TRANSPORT_HEADERS.has(key) || key.startsWith("connect-")) continue;
      for (const one of Array.isArray(value) ? value : [value]) {
        md.add(key, key.endsWith("-bin") ? Buffer.from(one, "base64") : one);
      }
    }
    const options: grpc.CallOptions = timeoutMs === undefined ? {} : { deadline: Date.now() + timeoutMs };
    const path = request.url ?? "/";
    if (request.headers["content-type"] === "application/connect+proto") {
      stream(path, body, md, options, response);
      return;
    }
    let headers = new grpc.Metadata();
    let payload: Buffer | undefined;
    const call = client.makeUnaryRequest(
      path,
      identity,
      identity,
      body,
      md,
      options,
      (_e, value?: Buffer) => {
        payload = value;
      },
    );
    response.once("close", () => {
      if (!response.writableFinished) call.cancel();
    });
    call.on("metadata", (m: grpc.Metadata) => {
      headers = m;
    });
    call.on("status", (status: grpc.StatusObject) => {
      const out: http.OutgoingHttpHeaders = {};
      putMetadata(out, headers, "");
      if (status.code === grpc.status.OK) {
        putMetadata(out, status.metadata, "trailer-");
        response.writeHead(200, { ...out, "content-type": "application/proto" });
        response.end(payload ?? Buffer.alloc(0));
        return;
      }
      putMetadata(out, status.metadata, "trailer-");
      response.writeHead(httpStatusOf(codeFromNumber(status.code)), {
        ...out,
        "content-type": "application/json",
      });
      response.end(JSON.stringify(errorJson(status)));
    });
  }

  function stream(
    path: string,
    body: Buffer,
    md: grpc.Metadata,
    options: grpc.CallOptions,
    response: http.ServerResponse,
  ): void {
    // One request envelope: flags (1 byte), length (4 bytes), the message.
    const message = body.subarray(5, 5 + body.readUInt32BE(1));
    const call = client.makeServerStreamRequest(path, identity, identity, message, md, options);
    response.once("close", () => {
      if (!response.writableFinished) call.cancel();
    });
    let started = false;
    const start = (headers: grpc.Metadata): void => {
      if (started) return;
      started = true;
      const out: http.OutgoingHttpHeaders = {};
      putMetadata(out, headers, "");
      response.writeHead(200, { ...out, "content-type": "application/connect+proto" });
    };
    call.on("metadata", (m: grpc.Metadata) => start(m));
    call.on("data", (item: Buffer) => {
      start(new grpc.Metadata());
      response.write(frameEnvelope(0, item));
    });
    call.on("error", () => {
      // The status event below carries the outcome.
    });
    call.on("status", (status: grpc.StatusObject) => {
      start(new grpc.Metadata());
      const metadata: Record<string, string[]> = {};
      for (const [key, values] of Object.entries(status.metadata.toJSON())) {
        if (key === DETAILS_KEY) continue;
        metadata[key] = values.map((v) => (Buffer.isBuffer(v) ? v.toString("base64") : String(v)));
      }
      const end = status.code === grpc.status.OK ? { metadata } : { error: errorJson(status), metadata };
      response.end(frameEnvelope(END_STREAM_FLAG, Buffer.from(JSON.stringify(end), "utf8")));
    });
  }

  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      client.close();
    },
  };
}

/**
 * The Connect error body of the lab's gRPC status, as a Connect process sends it: the
 * bridge's own encoder, the status passed through as the process's (no details added).
 */
function errorJson(status: grpc.StatusObject): ConnectErrorJson {
  const raw = status.metadata.get(DETAILS_KEY)[0];
  const details = Buffer.isBuffer(raw) ? decodeStatus(raw).details : [];
  const code = codeFromNumber(status.code);
  return connectErrorJson(new BridgeError(code, "", status.details, { details, fromProcess: true }));
}

function putMetadata(out: http.OutgoingHttpHeaders, metadata: grpc.Metadata, prefix: string): void {
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    if (key === DETAILS_KEY) continue;
    out[`${prefix}${key}`] = values.map((v) => (Buffer.isBuffer(v) ? v.toString("base64") : String(v)));
  }
}
