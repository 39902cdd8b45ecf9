import * as grpc from "@grpc/grpc-js";
import { encodeStatus } from "../../../bridge/errors/rich-status.js";
import { isServerStreaming, LAB_METHODS, type LabAnswer, type LabLogic } from "./lab-logic.js";

const identity = (b: Buffer): Buffer => b;

/** The lab services over gRPC with grpc-js: raw bytes in and out, the logic decodes. */
export async function startGrpcLabServer(
  logic: LabLogic,
): Promise<{ address: string; close(): Promise<void> }> {
  const server = new grpc.Server();
  for (const [service, methods] of Object.entries(LAB_METHODS)) {
    const definition: Record<string, grpc.MethodDefinition<Buffer, Buffer>> = {};
    const implementation: grpc.UntypedServiceImplementation = {};
    for (const method of methods) {
      const streaming = isServerStreaming(method);
      definition[method] = {
        path: `/${service}/${method}`,
        requestStream: false,
        responseStream: streaming,
        requestSerialize: identity,
        requestDeserialize: identity,
        responseSerialize: identity,
        responseDeserialize: identity,
      };
      implementation[method] = streaming
        ? (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
            void serveStream(logic, service, method, call);
          }
        : (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
            void serveUnary(logic, service, method, call, callback);
          };
    }
    server.addService(definition, implementation);
  }
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, p) =>
      error === null ? resolve(p) : reject(error),
    ),
  );
  return {
    address: `127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
        setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000).unref();
      }),
  };
}

function requestOf(
  service: string,
  method: string,
  call: grpc.ServerUnaryCall<Buffer, Buffer> | grpc.ServerWritableStream<Buffer, Buffer>,
) {
  const metadata: Record<string, string> = {};
  for (const [key, value] of Object.entries(call.metadata.getMap())) {
    metadata[key.toLowerCase()] = Buffer.isBuffer(value) ? value.toString("base64") : String(value);
  }
  const deadline = call.getDeadline();
  const deadlineAtMs =
    deadline instanceof Date ? deadline.getTime() : Number.isFinite(deadline) ? Number(deadline) : undefined;
  const abort = new AbortController();
  call.on("cancelled", () => abort.abort());
  return {
    service,
    method,
    transport: "grpc" as const,
    metadata,
    deadlineAtMs,
    signal: abort.signal,
    payload: call.request,
  };
}

function toMetadata(values: Readonly<Record<string, string>>): grpc.Metadata {
  const md = new grpc.Metadata();
  for (const [key, value] of Object.entries(values)) {
    md.set(key, key.endsWith("-bin") ? Buffer.from(value, "base64") : value);
  }
  return md;
}

function statusOf(answer: LabAnswer): Partial<grpc.StatusObject> {
  const fault = answer.fault;
  const trailers = toMetadata(answer.trailers);
  if (fault === undefined) return { code: 0, details: "", metadata: trailers };
  // S14: the exact code, message and details, as a rich status.
  trailers.set(
    "grpc-status-details-bin",
    Buffer.from(encodeStatus({ code: fault.code, message: fault.message, details: fault.details })),
  );
  return { code: fault.code, details: fault.message, metadata: trailers };
}

async function serveUnary(
  logic: LabLogic,
  service: string,
  method: string,
  call: grpc.ServerUnaryCall<Buffer, Buffer>,
  callback: grpc.sendUnaryData<Buffer>,
): Promise<void> {
  try {
    const answer = await logic.handle(requestOf(service, method, call), async () => undefined);
    if (call.cancelled) return;
    if (Object.keys(answer.headers).length > 0) call.sendMetadata(toMetadata(answer.headers));
    const status = statusOf(answer);
    if (answer.fault !== undefined) {
      callback(status as grpc.ServiceError);
      return;
    }
    callback(null, Buffer.from(answer.messages[0] ?? new Uint8Array()), status.metadata);
  } catch (error) {
    callback({ code: 13, details: `lab service failure: ${String(error)}` } as grpc.ServiceError);
  }
}

async function serveStream(
  logic: LabLogic,
  service: string,
  method: string,
  call: grpc.ServerWritableStream<Buffer, Buffer>,
): Promise<void> {
  try {
    let headersSent = false;
    const request = requestOf(service, method, call);
    const answer = await logic.handle(request, async (message) => {
      if (!headersSent) headersSent = true;
      // Backpressure: wait for the write to drain before the next item.
      if (!call.write(Buffer.from(message))) await new Promise<void>((r) => call.once("drain", () => r()));
    });
    if (call.cancelled) return;
    if (!headersSent && Object.keys(answer.headers).length > 0) call.sendMetadata(toMetadata(answer.headers));
    const status = statusOf(answer);
    if (answer.fault !== undefined) {
      // grpc-js ends a server stream with a status when the call emits it as an error.
      call.emit("error", status);
      return;
    }
    call.end(status.metadata);
  } catch (error) {
    call.emit("error", { code: 13, details: `lab service failure: ${String(error)}` });
  }
}
