import * as grpc from "@grpc/grpc-js";
import type { Metadata } from "../../bridge/call/metadata.js";
import { codeFromNumber } from "../../bridge/errors/code.js";
import type { LabTransport, RawCall, RawOutcome } from "./lab-transport.js";

const identity = (bytes: Buffer): Buffer => bytes;
const DETAILS_KEY = "grpc-status-details-bin";

/** Lab calls through a real grpc-js client, bytes in and out. */
export function createGrpcJsTransport(address: string): LabTransport {
  const client = new grpc.Client(address, grpc.credentials.createInsecure());
  return {
    name: "grpc-js",
    call: (call) => run(client, call),
    async close() {
      client.close();
    },
  };
}

function run(client: grpc.Client, call: RawCall): Promise<RawOutcome> {
  const md = new grpc.Metadata();
  for (const [key, value] of Object.entries(call.metadata)) {
    md.add(key, key.endsWith("-bin") ? Buffer.from(value, "base64") : value);
  }
  const options: grpc.CallOptions =
    call.timeoutMs === undefined ? {} : { deadline: Date.now() + call.timeoutMs };
  const requests = call.requests.map((r) => Buffer.from(r.buffer, r.byteOffset, r.byteLength));
  return new Promise((resolve) => {
    let headers: Metadata = {};
    let status: grpc.StatusObject | undefined;
    let ended = call.kind === "unary" || call.kind === "client_stream";
    const onAbort = (): void => handle.cancel();
    const settle = (): void => {
      if (status === undefined || !ended) return;
      call.signal?.removeEventListener("abort", onAbort);
      const trailers = fromGrpc(status.metadata);
      const details = status.metadata.get(DETAILS_KEY)[0];
      delete trailers[DETAILS_KEY];
      resolve({
        code: codeFromNumber(status.code),
        message: status.details,
        statusDetails: Buffer.isBuffer(details) ? new Uint8Array(details) : undefined,
        headers,
        trailers,
      });
    };
    const onStatus = (s: grpc.StatusObject): void => {
      status = s;
      settle();
    };
    const onMessage = (value: unknown): void => {
      if (value !== undefined) call.onMessage(new Uint8Array(value as Buffer));
    };
    // Unary-response calls report their message through the callback, just before the status.
    const callback = (_error: grpc.ServiceError | null, value?: Buffer): void => onMessage(value);
    let handle: grpc.Call;
    const path = call.path;
    switch (call.kind) {
      case "unary":
        handle = client.makeUnaryRequest(
          path,
          identity,
          identity,
          requests[0] ?? Buffer.alloc(0),
          md,
          options,
          callback,
        );
        break;
      case "client_stream": {
        const stream = client.makeClientStreamRequest(path, identity, identity, md, options, callback);
        for (const r of requests) stream.write(r);
        stream.end();
        handle = stream;
        break;
      }
      case "server_stream":
      case "bidi": {
        const stream =
          call.kind === "server_stream"
            ? client.makeServerStreamRequest(
                path,
                identity,
                identity,
                requests[0] ?? Buffer.alloc(0),
                md,
                options,
              )
            : client.makeBidiStreamRequest(path, identity, identity, md, options);
        stream.on("data", onMessage);
        // A failed stream emits "error" instead of "end"; the status carries the outcome.
        stream.on("error", () => {
          ended = true;
          settle();
        });
        stream.on("end", () => {
          ended = true;
          settle();
        });
        if (call.kind === "bidi") {
          const duplex = stream as grpc.ClientDuplexStream<Buffer, Buffer>;
          for (const r of requests) duplex.write(r);
          duplex.end();
        }
        handle = stream;
        break;
      }
    }
    handle.on("metadata", (h: grpc.Metadata) => {
      headers = fromGrpc(h);
    });
    handle.on("status", onStatus);
    if (call.signal !== undefined) {
      if (call.signal.aborted) handle.cancel();
      else call.signal.addEventListener("abort", onAbort, { once: true });
    }
  });
}

/** grpc-js metadata in the bridge's neutral form: binary values as base64 text. */
function fromGrpc(md: grpc.Metadata): Record<string, readonly string[]> {
  const out: Record<string, readonly string[]> = {};
  for (const [key, values] of Object.entries(md.toJSON())) {
    out[key] = values.map((v) => (Buffer.isBuffer(v) ? v.toString("base64") : String(v)));
  }
  return out;
}
