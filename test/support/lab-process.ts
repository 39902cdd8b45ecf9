import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { encodeErrorInfo, encodeStatus } from "../../bridge/errors/rich-status.js";
import { repoRoot } from "./repo-root.js";

type SurfaceCall = Pick<grpc.ServerUnaryCall<unknown, unknown>, "metadata" | "getDeadline" | "getPeer"> & {
  once(event: "cancelled", listener: () => void): unknown;
};

/** What the lab process saw of one delivery. */
export interface LabDelivery {
  readonly service: string;
  readonly method: string;
  readonly key: string;
  readonly text: string;
  readonly sessionId: string;
  readonly messageId: string;
  readonly seq: string;
  readonly metadata: Readonly<Record<string, string>>;
  /** The connection it came on ("ipv4:127.0.0.1:40123"): tells one bridge process from the next. */
  readonly peer: string;
  readonly atMs: number;
}

export interface LabOp {
  key?: string;
  text?: string;
  delay_ms?: number;
  fail_code?: number;
  count?: number;
  fail_times?: number;
}

export interface LabResult {
  key: string;
  text: string;
  session_id: string;
  message_id: string;
  seq: string;
  principal: string;
  traceparent: string;
  deadline_ms: string;
  metadata_keys: string[];
  metadata: Record<string, string>;
  log: string[];
}

/**
 * A real gRPC server implementing the lab contracts for the engine tests, loaded from
 * the .proto files alone. It records every delivery, keeps a log per session (applying
 * each message id once), tracks how many calls run at once per session, and behaves as
 * each request asks: delay, fail with a code, fail a number of times, stream.
 */
export interface LabProcess {
  readonly port: number;
  readonly deliveries: LabDelivery[];
  /** Message ids of deliveries whose caller (the bridge) cancelled them before they ended. */
  readonly cancelled: ReadonlySet<string>;
  /** Highest number of exclusive calls seen running at once in one session. */
  readonly maxExclusiveOverlap: number;
  /** Highest number of calls (any access) seen running at once in one session. */
  readonly maxOverlap: number;
  /** The same two counts for one session. */
  overlapOf(sessionId: string): { readonly all: number; readonly exclusive: number };
  logOf(sessionId: string): readonly string[];
  /**
   * Holds deliveries of `key` (of `method`, if given) in the process, counted as running,
   * until released: tests order events by what the process saw, not by the clock.
   */
  hold(key: string, method?: string): LabGate;
  close(): Promise<void>;
}

export interface LabGate {
  release(): void;
}

export const LAB_PROTO_DIR = path.join(repoRoot(), "test/fixtures/lab/proto");

let labDefinition: protoLoader.PackageDefinition | undefined;

/** The lab contracts as proto-loader loads them: field names as in the .proto, longs as strings. */
export function loadLabDefinition(): protoLoader.PackageDefinition {
  labDefinition ??= protoLoader.loadSync("test/lab/v1/lab.proto", {
    includeDirs: [LAB_PROTO_DIR, path.join(repoRoot(), "proto")],
    keepCase: true,
    longs: String,
    defaults: true,
  });
  return labDefinition;
}

export function loadLabPackage(): grpc.GrpcObject {
  return grpc.loadPackageDefinition(loadLabDefinition());
}

/** A grpc-js client of test.lab.v1.Counter at `address` (the lab process, or a bridge in front of it). */
export function labCounterClient(address: string): grpc.Client {
  const pkg = loadLabPackage() as unknown as {
    test: { lab: { v1: { Counter: grpc.ServiceClientConstructor } } };
  };
  return new pkg.test.lab.v1.Counter(address, grpc.credentials.createInsecure());
}

export async function startLabProcess(): Promise<LabProcess> {
  const pkg = loadLabPackage() as unknown as {
    test?: { lab?: { v1?: Record<string, { service: grpc.ServiceDefinition }> } };
  };
  const lab = pkg.test?.lab?.v1;
  if (lab === undefined) throw new Error("lab package not found");
  const deliveries: LabDelivery[] = [];
  const cancelled = new Set<string>();
  const logs = new Map<string, string[]>();
  const applied = new Set<string>();
  const failures = new Map<string, number>();
  const running = new Map<string, { all: number; exclusive: number }>();
  const peaks = new Map<string, { all: number; exclusive: number }>();
  let maxExclusiveOverlap = 0;
  let maxOverlap = 0;
  const gates: { key: string; method: string | undefined; open: Promise<void>; release: () => void }[] = [];

  /** Waits while a gate holds this delivery. */
  async function gate(d: LabDelivery): Promise<void> {
    for (const g of gates) {
      if (g.key === d.key && (g.method === undefined || g.method === d.method)) await g.open;
    }
  }

  function record(service: string, method: string, call: SurfaceCall, op: LabOp): LabDelivery {
    const metadata: Record<string, string> = {};
    for (const [k, v] of Object.entries(call.metadata.getMap())) {
      metadata[k] = Buffer.isBuffer(v) ? v.toString("base64") : String(v);
    }
    const delivery: LabDelivery = {
      service,
      method,
      key: op.key ?? "",
      text: op.text ?? "",
      sessionId: metadata["sb-session-id"] ?? "",
      messageId: metadata["sb-message-id"] ?? "",
      seq: metadata["sb-seq"] ?? "",
      metadata,
      peer: call.getPeer(),
      atMs: Date.now(),
    };
    deliveries.push(delivery);
    call.once("cancelled", () => cancelled.add(delivery.messageId));
    return delivery;
  }

  function result(d: LabDelivery, call: SurfaceCall, op: LabOp): LabResult {
    const deadline = call.getDeadline();
    const deadlineMs = deadline instanceof Date ? deadline.getTime() : deadline;
    return {
      key: op.key ?? "",
      text: op.text ?? "",
      session_id: d.sessionId,
      message_id: d.messageId,
      seq: d.seq,
      principal: d.metadata["sb-principal"] ?? "",
      traceparent: d.metadata.traceparent ?? "",
      deadline_ms: String(
        Number.isFinite(deadlineMs) ? Math.max(0, Math.round(deadlineMs - Date.now())) : -1,
      ),
      metadata_keys: Object.keys(d.metadata).sort(),
      metadata: d.metadata,
      log: [...(logs.get(d.sessionId) ?? [])],
    };
  }

  function apply(d: LabDelivery): void {
    if (d.sessionId === "" || applied.has(d.messageId)) return;
    applied.add(d.messageId);
    const log = logs.get(d.sessionId) ?? [];
    log.push(d.text === "" ? d.method : `${d.method}:${d.text}`);
    logs.set(d.sessionId, log);
  }

  /** The failure this op asks for, if any, as a grpc-js error. */
  function failureOf(op: LabOp, messageId: string): grpc.ServiceError | undefined {
    if (op.fail_times !== undefined && op.fail_times > 0) {
      const seen = failures.get(messageId) ?? 0;
      if (seen < op.fail_times) {
        failures.set(messageId, seen + 1);
        return serviceError(grpc.status.UNAVAILABLE, `failing on purpose (${seen + 1}/${op.fail_times})`);
      }
    }
    if (op.fail_code !== undefined && op.fail_code !== 0) {
      const error = serviceError(op.fail_code, `asked to fail with ${op.fail_code}`);
      // "rich": a google.rpc.Status with the process's own ErrorInfo and a custom detail (S14).
      if (op.text === "rich")
        error.metadata.set("grpc-status-details-bin", Buffer.from(RICH_DETAILS(op.fail_code)));
      return error;
    }
    return undefined;
  }

  function unary(service: string, method: string, exclusive: boolean) {
    return async (call: grpc.ServerUnaryCall<LabOp, LabResult>, callback: grpc.sendUnaryData<LabResult>) => {
      const op = call.request;
      const d = record(service, method, call, op);
      const counters = running.get(d.sessionId) ?? { all: 0, exclusive: 0 };
      running.set(d.sessionId, counters);
      counters.all += 1;
      if (exclusive) counters.exclusive += 1;
      maxOverlap = Math.max(maxOverlap, counters.all);
      if (exclusive) maxExclusiveOverlap = Math.max(maxExclusiveOverlap, counters.all);
      const peak = peaks.get(d.sessionId) ?? { all: 0, exclusive: 0 };
      peaks.set(d.sessionId, peak);
      peak.all = Math.max(peak.all, counters.all);
      if (exclusive) peak.exclusive = Math.max(peak.exclusive, counters.all);
      try {
        await gate(d);
        if (op.delay_ms) await sleep(op.delay_ms);
        const failure = failureOf(op, d.messageId);
        if (failure !== undefined) {
          if (op.text === "fault-metadata") {
            // S14, S15: a process's own headers and trailers on a fault.
            const headers = new grpc.Metadata();
            headers.set("x-lab-fault-header", method);
            call.sendMetadata(headers);
            failure.metadata.set("x-lab-fault-trailer", "failed");
          }
          callback(failure);
          return;
        }
        apply(d);
        const headers = new grpc.Metadata();
        headers.set("x-lab-header", method);
        call.sendMetadata(headers);
        const trailers = new grpc.Metadata();
        trailers.set("x-lab-trailer", "done");
        callback(null, result(d, call, op), trailers);
      } finally {
        counters.all -= 1;
        if (exclusive) counters.exclusive -= 1;
      }
    };
  }

  const server = new grpc.Server();
  server.addService(lab.Counter?.service as grpc.ServiceDefinition, {
    Start: unary("Counter", "Start", true),
    Do: unary("Counter", "Do", true),
    Peek: unary("Counter", "Peek", false),
    Fire: async (call: grpc.ServerUnaryCall<LabOp, object>, callback: grpc.sendUnaryData<object>) => {
      const op = call.request;
      const d = record("Counter", "Fire", call, op);
      await gate(d);
      if (op.delay_ms) await sleep(op.delay_ms);
      const failure = failureOf(op, d.messageId);
      if (failure !== undefined) {
        callback(failure);
        return;
      }
      apply(d);
      callback(null, {});
    },
    Finish: unary("Counter", "Finish", true),
    Watch: async (call: grpc.ServerWritableStream<LabOp, LabResult>) => {
      const op = call.request;
      const d = record("Counter", "Watch", call, op);
      await gate(d);
      const failure = failureOf(op, d.messageId);
      if (failure !== undefined) {
        call.emit("error", failure);
        return;
      }
      apply(d);
      for (let i = 0; i < (op.count ?? 0); i++) {
        if (op.delay_ms) await sleep(op.delay_ms);
        call.write({ ...result(d, call, op), text: `${op.text ?? ""}#${i + 1}` });
      }
      const trailers = new grpc.Metadata();
      trailers.set("x-lab-trailer", "watched");
      call.end(trailers);
    },
    Upload: async (
      call: grpc.ServerReadableStream<LabOp, LabResult>,
      callback: grpc.sendUnaryData<LabResult>,
    ) => {
      const texts: string[] = [];
      let first: LabDelivery | undefined;
      let firstOp: LabOp = {};
      for await (const op of call.iterator({ destroyOnReturn: false }) as AsyncIterable<LabOp>) {
        first ??= record("Counter", "Upload", call, op);
        if (texts.length === 0) firstOp = op;
        texts.push(op.text ?? "");
      }
      if (first === undefined) {
        callback(serviceError(grpc.status.INVALID_ARGUMENT, "empty upload"));
        return;
      }
      apply(first);
      callback(null, { ...result(first, call, firstOp), text: texts.join(",") });
    },
    Chat: async (call: grpc.ServerDuplexStream<LabOp, LabResult>) => {
      let first: LabDelivery | undefined;
      // Not a plain for-await: that would destroy the duplex, and the status with it, at half-close.
      for await (const op of call.iterator({ destroyOnReturn: false }) as AsyncIterable<LabOp>) {
        first ??= record("Counter", "Chat", call, op);
        call.write({ ...result(first, call, op), text: `echo:${op.text ?? ""}` });
      }
      call.end();
    },
  });
  server.addService(lab.Unique?.service as grpc.ServiceDefinition, {
    Start: unary("Unique", "Start", true),
    Do: unary("Unique", "Do", true),
  });
  server.addService(lab.Line?.service as grpc.ServiceDefinition, {
    Begin: unary("Line", "Begin", true),
    Step: unary("Line", "Step", true),
    End: unary("Line", "End", true),
  });
  server.addService(lab.Solo?.service as grpc.ServiceDefinition, {
    Begin: unary("Solo", "Begin", true),
    Step: unary("Solo", "Step", true),
  });
  server.addService(lab.Plain?.service as grpc.ServiceDefinition, {
    Echo: unary("Plain", "Echo", true),
  });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error === null ? resolve(bound) : reject(error),
    ),
  );
  return {
    port,
    deliveries,
    cancelled,
    get maxExclusiveOverlap() {
      return maxExclusiveOverlap;
    },
    get maxOverlap() {
      return maxOverlap;
    },
    overlapOf: (sessionId) => ({ ...(peaks.get(sessionId) ?? { all: 0, exclusive: 0 }) }),
    logOf: (sessionId) => logs.get(sessionId) ?? [],
    hold(key, method) {
      let release = (): void => {};
      const open = new Promise<void>((resolve) => {
        release = resolve;
      });
      gates.push({ key, method, open, release });
      return { release };
    },
    close: () => {
      // Nothing may stay held past the end of a suite.
      for (const g of gates) g.release();
      return new Promise<void>((resolve) => {
        server.tryShutdown(() => resolve());
      });
    },
  };
}

/** The exact status details the lab sends for "rich" failures, for tests to compare. */
export const RICH_DETAIL = {
  typeUrl: "type.googleapis.com/test.lab.v1.Op",
  value: Buffer.from([0x0a, 0x04, 0x72, 0x69, 0x63, 0x68]),
};

export function RICH_DETAILS(code: number): Uint8Array {
  return encodeStatus({
    code,
    message: `asked to fail with ${code}`,
    details: [
      encodeErrorInfo({ reason: "LAB_REASON", domain: "lab.test", metadata: { where: "lab" } }),
      RICH_DETAIL,
    ],
  });
}

function serviceError(code: number, message: string): grpc.ServiceError {
  return Object.assign(new Error(message), { code, details: message, metadata: new grpc.Metadata() });
}
