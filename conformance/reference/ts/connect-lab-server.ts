import http from "node:http";
import type { AddressInfo } from "node:net";
import {
  ActRequest,
  ItemsRequest,
  LabItem,
  LabReply,
  OpenRequest,
  PostAck,
} from "../../../sdk/gen/sessionbridge/conformance/v1/lab.js";
import { CONNECT_CODES, HTTP_STATUS } from "../../runner/connect-lab-transport.js";
import { isServerStreaming, type LabFault, type LabLogic, labFault } from "./lab-logic.js";

/** Requests larger than this are refused before they are buffered. */
const MAX_REQUEST_BYTES = 8 * 1024 * 1024;

/**
 * The lab services over HTTP with the Connect protocol: unary POSTs in `application/proto`
 * or `application/json`, server streams in the Connect envelope format, the deadline from
 * `Connect-Timeout-Ms` (S15), faults as Connect error JSON (S14).
 */
export async function startConnectLabServer(
  logic: LabLogic,
): Promise<{ url: string; close(): Promise<void> }> {
  const server = http.createServer((req, res) => {
    void serve(logic, req, res).catch(() => {
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
  });
  server.keepAliveTimeout = 30_000;
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

async function serve(logic: LabLogic, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
  const match = /^\/([\w.]+)\/(\w+)$/.exec(req.url ?? "");
  const contentType = (req.headers["content-type"] ?? "").split(";")[0]?.trim() ?? "";
  const streaming = contentType.startsWith("application/connect+");
  const json = contentType.endsWith("json");
  const body = await readBody(req);
  if (body === undefined) {
    sendError(res, labFault(8, "RESOURCE_EXHAUSTED", "request too large"), {}, {});
    return;
  }
  if (req.method !== "POST" || match === null || !logic.knows(match[1] ?? "", match[2] ?? "")) {
    sendError(res, labFault(12, "UNIMPLEMENTED", `no method ${req.url ?? ""}`), {}, {});
    return;
  }
  const service = match[1] ?? "";
  const method = match[2] ?? "";
  if (streaming !== isServerStreaming(method)) {
    res.writeHead(415, {
      "accept-post": streaming ? "application/proto, application/json" : "application/connect+proto",
    });
    res.end();
    return;
  }
  let payload: Uint8Array = body;
  if (streaming) {
    if (body.length < 5 || body.readUInt32BE(1) !== body.length - 5) {
      sendError(res, labFault(3, "MALFORMED_MESSAGE", "bad Connect envelope"), {}, {});
      return;
    }
    payload = body.subarray(5);
  }
  if (json) {
    try {
      payload = jsonToBinary(method, payload);
    } catch (error) {
      sendError(res, labFault(3, "MALFORMED_MESSAGE", `bad JSON: ${String(error)}`), {}, {});
      return;
    }
  }
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(req.headers)) {
    if (value !== undefined) metadata[key.toLowerCase()] = Array.isArray(value) ? value.join(",") : value;
  }
  const timeout = metadata["connect-timeout-ms"];
  const deadlineAtMs = timeout === undefined ? undefined : Date.now() + Number(timeout);
  const abort = new AbortController();
  res.on("close", () => {
    if (!res.writableFinished) abort.abort();
  });
  const request = {
    service,
    method,
    transport: "http" as const,
    metadata,
    deadlineAtMs,
    signal: abort.signal,
    payload,
  };
  if (!streaming) {
    const answer = await logic.handle(request, async () => undefined);
    if (abort.signal.aborted) return;
    if (answer.fault !== undefined) {
      sendError(res, answer.fault, answer.headers, answer.trailers);
      return;
    }
    const out = answer.messages[0] ?? new Uint8Array();
    const headers: Record<string, string> = {
      ...answer.headers,
      "content-type": json ? "application/json" : "application/proto",
    };
    for (const [k, v] of Object.entries(answer.trailers)) headers[`trailer-${k}`] = v;
    const bytes = json ? Buffer.from(JSON.stringify(binaryToJson(method, out))) : Buffer.from(out);
    res.writeHead(200, headers);
    res.end(bytes);
    return;
  }
  let started = false;
  const start = (headers: Record<string, string>) => {
    if (started) return;
    started = true;
    res.writeHead(200, {
      ...headers,
      "content-type": json ? "application/connect+json" : "application/connect+proto",
    });
  };
  const answer = await logic.handle(request, async (message) => {
    start({});
    const data = json
      ? Buffer.from(JSON.stringify(LabItem.toJSON(LabItem.decode(message))))
      : Buffer.from(message);
    if (!res.write(envelope(0, data))) await new Promise<void>((r) => res.once("drain", () => r()));
  });
  if (abort.signal.aborted) return;
  start(answer.headers);
  const metadataOut: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(answer.trailers)) metadataOut[k] = [v];
  const end: Record<string, unknown> = { metadata: metadataOut };
  if (answer.fault !== undefined) end.error = connectError(answer.fault);
  res.end(envelope(2, Buffer.from(JSON.stringify(end))));
}

function envelope(flags: number, data: Buffer): Buffer {
  const out = Buffer.alloc(5 + data.length);
  out.writeUInt8(flags, 0);
  out.writeUInt32BE(data.length, 1);
  data.copy(out, 5);
  return out;
}

function connectError(fault: LabFault): Record<string, unknown> {
  return {
    code: CONNECT_CODES[fault.code] ?? "unknown",
    message: fault.message,
    details: fault.details.map((d) => ({
      type: d.typeUrl.slice(d.typeUrl.lastIndexOf("/") + 1),
      value: Buffer.from(d.value).toString("base64").replace(/=+$/, ""),
    })),
  };
}

function sendError(
  res: http.ServerResponse,
  fault: LabFault,
  headers: Readonly<Record<string, string>>,
  trailers: Readonly<Record<string, string>>,
): void {
  const out: Record<string, string> = { ...headers, "content-type": "application/json" };
  for (const [k, v] of Object.entries(trailers)) out[`trailer-${k}`] = v;
  res.writeHead(HTTP_STATUS[fault.code] ?? 500, out);
  res.end(JSON.stringify(connectError(fault)));
}

function readBody(req: http.IncomingMessage): Promise<Buffer | undefined> {
  const declared = Number(req.headers["content-length"] ?? "0");
  if (declared > MAX_REQUEST_BYTES) return Promise.resolve(undefined);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on("data", (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_REQUEST_BYTES) {
        req.destroy();
        resolve(undefined);
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks)));
    req.on("error", reject);
  });
}

function jsonToBinary(method: string, bytes: Uint8Array): Uint8Array {
  const value: unknown = JSON.parse(Buffer.from(bytes).toString("utf8"));
  if (method === "Open") return OpenRequest.encode(OpenRequest.fromJSON(value)).finish();
  if (method === "Items") return ItemsRequest.encode(ItemsRequest.fromJSON(value)).finish();
  return ActRequest.encode(ActRequest.fromJSON(value)).finish();
}

function binaryToJson(method: string, bytes: Uint8Array): unknown {
  if (method === "Post") return PostAck.toJSON(PostAck.decode(bytes));
  return LabReply.toJSON(LabReply.decode(bytes));
}
