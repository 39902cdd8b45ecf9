import http2 from "node:http2";
import v8 from "node:v8";
import vm from "node:vm";
import { loadBridgeSetup } from "../../../bridge/config/check-config.js";
import type { BridgeConfig } from "../../../bridge/config/config.js";
import { type BridgeRuntime, startBridgeRuntime } from "../../../cli/bridge-runtime.js";
import { LAB_CONFIG } from "../../support/lab-harness.js";
import type { LabOp, LabResult } from "../../support/lab-process.js";
import { labCounterClient, loadLabPackage } from "../../support/lab-process.js";

/** What a raw HTTP/2 request saw: response headers, the DATA bytes, trailers and how the stream closed. */
export interface RawOutcome {
  readonly headers: http2.IncomingHttpHeaders;
  readonly data: Buffer;
  readonly trailers: http2.IncomingHttpHeaders;
  /** grpc-status from the trailers, or from a trailers-only response. */
  readonly grpcStatus: number | undefined;
  readonly grpcMessage: string;
  readonly rstCode: number;
}

export interface RawRequest {
  readonly path: string;
  /** Extra or replacing request header fields. */
  readonly headers?: http2.OutgoingHttpHeaders;
  /** Bytes to send as DATA. */
  readonly body?: readonly Buffer[];
  /** End the request side after the body (default true). */
  readonly end?: boolean;
}

/**
 * One request over a plain node:http2 client, for input grpc-js would never send.
 * Resolves when the stream closes, whether or not the request side was ended.
 */
export function rawCall(session: http2.ClientHttp2Session, request: RawRequest): Promise<RawOutcome> {
  return new Promise((resolve, reject) => {
    const stream = session.request({
      ":method": "POST",
      ":path": request.path,
      "content-type": "application/grpc",
      te: "trailers",
      ...request.headers,
    });
    let headers: http2.IncomingHttpHeaders = {};
    let trailers: http2.IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    stream.on("response", (h) => {
      headers = h;
    });
    stream.on("trailers", (t) => {
      trailers = t;
    });
    stream.on("data", (chunk: Buffer) => chunks.push(chunk));
    stream.on("error", () => {
      // A reset shows in rstCode.
    });
    stream.on("close", () => {
      const source = trailers["grpc-status"] !== undefined ? trailers : headers;
      const status = source["grpc-status"];
      resolve({
        headers,
        data: Buffer.concat(chunks),
        trailers,
        grpcStatus: status === undefined ? undefined : Number(status),
        grpcMessage: decodeURIComponent(String(source["grpc-message"] ?? "")),
        rstCode: stream.rstCode ?? 0,
      });
    });
    try {
      for (const chunk of request.body ?? []) stream.write(chunk);
      if (request.end ?? true) stream.end();
    } catch (error) {
      reject(error);
    }
  });
}

export function connectRaw(address: string): Promise<http2.ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://${address}`);
    session.once("error", reject);
    session.once("remoteSettings", () => {
      session.off("error", reject);
      session.on("error", () => {});
      resolve(session);
    });
  });
}

type Codec = { requestSerialize(v: unknown): Buffer; responseDeserialize(b: Buffer): unknown };

function counterMethod(name: string): Codec {
  const pkg = loadLabPackage() as unknown as {
    test: { lab: { v1: { Counter: { service: Record<string, Codec> } } } };
  };
  const method = pkg.test.lab.v1.Counter.service[name];
  if (method === undefined) throw new Error(`no Counter method ${name}`);
  return method;
}

/** A lab Op as protobuf bytes. */
export function encodeOp(op: LabOp): Buffer {
  return counterMethod("Start").requestSerialize(op);
}

/** A lab Result from protobuf bytes (int64 as string). */
export function decodeResult(bytes: Buffer): LabResult {
  return counterMethod("Start").responseDeserialize(bytes) as LabResult;
}

/** The bridge with the lab contracts, its process location pointing at `port`. */
export async function startBridgeAt(port: number, store = "memory"): Promise<BridgeRuntime> {
  const setup = loadBridgeSetup({ file: LAB_CONFIG, overrides: { grpc: "127.0.0.1:0", store } });
  const config: BridgeConfig = {
    ...setup.config,
    processes: setup.config.processes.map((p) => ({ ...p, location: `grpc://127.0.0.1:${port}` })),
  };
  return startBridgeRuntime({ config, contracts: setup.contracts });
}

/** A grpc-js client of test.lab.v1.Counter at `address`. */
export const counterClient = labCounterClient;

let collect: (() => void) | undefined;

/**
 * Bytes of heap and array buffers in this process, after a full collection, so that
 * garbage not yet collected does not count as memory held. The collector is reached
 * without --expose-gc on the command line: the flag is set at run time and `gc` taken
 * from a fresh context.
 */
export function memoryInUse(): number {
  if (collect === undefined) {
    v8.setFlagsFromString("--expose-gc");
    collect = vm.runInNewContext("gc") as () => void;
  }
  collect();
  const usage = process.memoryUsage();
  return usage.heapUsed + usage.arrayBuffers;
}
