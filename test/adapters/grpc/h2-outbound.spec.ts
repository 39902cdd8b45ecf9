import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { type AddressInfo, createServer, type Socket } from "node:net";
import { deflateSync, gzipSync } from "node:zlib";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { createGrpcTransport } from "../../../adapters/grpc/h2-outbound.js";
import type { Metadata } from "../../../bridge/call/metadata.js";
import { wireFormOf } from "../../../bridge/call/wire-form.js";
import type { OperationContract } from "../../../bridge/contracts/contract.js";
import { BridgeError } from "../../../bridge/errors/bridge-error.js";
import { Code } from "../../../bridge/errors/code.js";
import { Reason } from "../../../bridge/errors/reason.js";
import { ERROR_INFO_TYPE_URL, encodeErrorInfo, encodeStatus } from "../../../bridge/errors/rich-status.js";
import type {
  Delivery,
  ProcessClient,
  ProcessStreamEvent,
  StreamDelivery,
  UnaryDelivery,
} from "../../../bridge/process/process-client.js";
import {
  grpcFrame,
  type PassthroughMethod,
  type PassthroughServer,
  startPassthroughServer,
  startRawH2Server,
} from "../../support/passthrough-server.js";
import { sleep, waitFor } from "../../support/wait.js";

const UNARY = "/test.h2.v1.Echo/Unary";
const SERVER_STREAM = "/test.h2.v1.Echo/ServerStream";
const CLIENT_STREAM = "/test.h2.v1.Echo/ClientStream";
const BIDI = "/test.h2.v1.Echo/Bidi";

function operation(path: string, requestStream = false, responseStream = false): OperationContract {
  const [service = "", name = ""] = path.slice(1).split("/");
  return {
    path,
    service,
    name,
    requestType: "bytes",
    responseType: "bytes",
    requestStream,
    responseStream,
    startsSession: false,
    endsSession: false,
    oneWay: false,
    access: "exclusive",
    correlation: undefined,
  };
}

interface DeliveryOptions {
  readonly metadata?: Metadata;
  readonly deadlineMs?: number;
  readonly signal?: AbortSignal;
  readonly sessionId?: string;
}

function base(path: string, options: DeliveryOptions, streaming = false): Delivery {
  return {
    operation: operation(path, streaming, streaming),
    messageId: "msg-1",
    sessionId: options.sessionId,
    seq: 0,
    oneWay: false,
    principal: "anonymous",
    correlation: {},
    metadata: options.metadata ?? {},
    traceparent: undefined,
    tracestate: undefined,
    deadlineMs: options.deadlineMs,
    signal: options.signal ?? new AbortController().signal,
    codec: "proto",
  };
}

function unary(path: string, payload: Uint8Array, options: DeliveryOptions = {}): UnaryDelivery {
  return { ...base(path, options), payload };
}

function streaming(
  path: string,
  messages: AsyncIterable<Uint8Array>,
  options: DeliveryOptions = {},
): StreamDelivery {
  return { ...base(path, options, true), messages };
}

async function* fromArray(messages: readonly Uint8Array[]): AsyncGenerator<Uint8Array> {
  yield* messages;
}

async function collect(events: AsyncIterable<ProcessStreamEvent>): Promise<ProcessStreamEvent[]> {
  const out: ProcessStreamEvent[] = [];
  for await (const event of events) out.push(event);
  return out;
}

function payloadsOf(events: readonly ProcessStreamEvent[]): Buffer[] {
  return events.flatMap((e) => (e.type === "message" ? [Buffer.from(e.payload)] : []));
}

async function rejection(promise: Promise<unknown>): Promise<BridgeError> {
  try {
    await promise;
  } catch (error) {
    expect(error).to.be.instanceOf(BridgeError);
    return error as BridgeError;
  }
  throw new Error("expected the call to fail");
}

function connect(port: number, envelope = false): ProcessClient {
  return createGrpcTransport().connect({
    name: "echo",
    location: new URL(`grpc://127.0.0.1:${port}`),
    envelope,
  });
}

/** A numbered message: 4-byte index then filler, so order and integrity can be checked. */
function numbered(i: number, bytes = 16): Buffer {
  const b = Buffer.alloc(bytes, i % 251);
  b.writeUInt32BE(i, 0);
  return b;
}

const echoUnary: PassthroughMethod = {
  kind: "unary",
  handler: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
    callback(null, call.request),
};

describe("gRPC outbound on node:http2", () => {
  const cleanups: (() => Promise<void>)[] = [];
  const later = (fn: () => Promise<void>): void => {
    cleanups.push(fn);
  };
  afterEach(async () => {
    for (const fn of cleanups.splice(0).reverse()) await fn();
  });

  async function serve(
    methods: Readonly<Record<string, PassthroughMethod>>,
    options: grpc.ServerOptions = {},
  ): Promise<{ server: PassthroughServer; client: ProcessClient }> {
    const server = await startPassthroughServer(methods, options);
    const client = connect(server.port);
    later(() => server.close());
    later(() => client.close());
    return { server, client };
  }

  describe("unary", () => {
    it("returns the reply with its headers and trailers, and sends the gRPC request headers", async () => {
      let seen: grpc.Metadata | undefined;
      const { client } = await serve({
        [UNARY]: {
          kind: "unary",
          handler: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
            seen = call.metadata;
            const headers = new grpc.Metadata();
            headers.set("x-header", "h1");
            call.sendMetadata(headers);
            const trailers = new grpc.Metadata();
            trailers.set("x-trailer", "t1");
            callback(null, Buffer.concat([Buffer.from("echo:"), call.request]), trailers);
          },
        },
      });
      const reply = await client.unary(
        unary(UNARY, Buffer.from("hello"), {
          metadata: { "x-custom": ["a", "b"] },
          sessionId: "s-1",
        }),
      );
      expect(Buffer.from(reply.payload).toString()).to.equal("echo:hello");
      expect(reply.headers["x-header"]).to.deep.equal(["h1"]);
      expect(reply.trailers["x-trailer"]).to.deep.equal(["t1"]);
      expect(reply.trailers).to.not.have.property("grpc-status");
      expect(reply.headers).to.not.have.property(":status");
      const md = seen?.getMap() ?? {};
      expect(md["sb-message-id"]).to.equal("msg-1");
      expect(md["sb-session-id"]).to.equal("s-1");
      expect(md["sb-principal"]).to.equal("anonymous");
      expect(seen?.get("x-custom")).to.deep.equal(["a, b"]);
      expect(String(md["user-agent"])).to.match(/^sessionbridge\/\d+\.\d+\.\d+/);
    });

    it("sends the gRPC request headers a strict server checks", async () => {
      let seen: Record<string, unknown> = {};
      const raw = await startRawH2Server((stream, headers) => {
        seen = { ...headers };
        stream.respond(
          { ":status": 200, "content-type": "application/grpc", "grpc-status": "0" },
          { endStream: true },
        );
      });
      later(() => raw.close());
      const client = connect(raw.port);
      later(() => client.close());
      // A trailers-only OK carries no message: a unary call needs exactly one.
      await rejection(client.unary(unary(UNARY, Buffer.from("x"), { deadlineMs: Date.now() + 3_000 })));
      expect(seen).to.include({
        ":method": "POST",
        ":scheme": "http",
        ":path": UNARY,
        ":authority": `127.0.0.1:${raw.port}`,
        "content-type": "application/grpc",
        te: "trailers",
        "grpc-accept-encoding": "identity,gzip,deflate",
      });
      expect(seen["grpc-timeout"]).to.match(/^\d{1,8}m$/);
      expect(Number.parseInt(String(seen["grpc-timeout"]), 10)).to.be.within(2_000, 3_000);
      expect(seen).to.not.have.property("sb-session-id");
    });

    it("carries messages larger than 64 KiB and 1 MiB both ways, split across DATA frames", async () => {
      const { client } = await serve({ [UNARY]: echoUnary });
      for (const size of [70 * 1024, 1536 * 1024]) {
        const payload = randomBytes(size);
        const reply = await client.unary(unary(UNARY, payload));
        expect(Buffer.from(reply.payload).equals(payload), `${size} bytes`).to.equal(true);
      }
    });

    it("passes a trailers-only error's rich details and ErrorInfo reason through unchanged (S14)", async () => {
      const other = { typeUrl: "type.googleapis.com/google.rpc.QuotaFailure", value: Buffer.from([1, 2, 3]) };
      const info = encodeErrorInfo({
        reason: "OUT_OF_STOCK",
        domain: "shop.example",
        metadata: { sku: "42" },
      });
      const { client } = await serve({
        [UNARY]: {
          kind: "unary",
          handler: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
            const trailers = new grpc.Metadata();
            trailers.set(
              "grpc-status-details-bin",
              Buffer.from(encodeStatus({ code: 9, message: "no stock left", details: [info, other] })),
            );
            trailers.set("x-trailer", "kept");
            callback({ code: 9, details: "no stock left", metadata: trailers });
          },
        },
      });
      const error = await rejection(client.unary(unary(UNARY, Buffer.from("x"))));
      expect(error.code).to.equal(Code.FAILED_PRECONDITION);
      expect(error.reason).to.equal("OUT_OF_STOCK");
      expect(error.message).to.equal("no stock left");
      expect(error.metadata).to.deep.equal({ sku: "42" });
      expect(error.details.map((d) => d.typeUrl)).to.deep.equal([ERROR_INFO_TYPE_URL, other.typeUrl]);
      expect(Buffer.from(error.details[1]?.value ?? []).equals(other.value)).to.equal(true);
    });

    it("decodes a percent-encoded grpc-message", async () => {
      const text = "50% off: naïve café, 100%! 你好";
      const { client } = await serve({
        [UNARY]: {
          kind: "unary",
          handler: (_call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) =>
            callback({ code: grpc.status.INVALID_ARGUMENT, details: text }),
        },
      });
      const error = await rejection(client.unary(unary(UNARY, Buffer.from("x"))));
      expect(error.code).to.equal(Code.INVALID_ARGUMENT);
      expect(error.reason).to.equal(Reason.PROCESS_FAULT);
      expect(error.message).to.equal(text);
    });

    it("round-trips binary metadata, several values under one key", async () => {
      const blob = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const small = Buffer.from([0xff, 0x00, 0x7f]);
      let seen: grpc.MetadataValue[] = [];
      const { client } = await serve({
        [UNARY]: {
          kind: "unary",
          handler: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
            seen = call.metadata.get("x-blob-bin");
            const headers = new grpc.Metadata();
            for (const value of seen) headers.add("x-echo-bin", value);
            call.sendMetadata(headers);
            const trailers = new grpc.Metadata();
            trailers.add("x-trailer-bin", small);
            callback(null, call.request, trailers);
          },
        },
      });
      const reply = await client.unary(
        unary(UNARY, Buffer.from("x"), {
          metadata: { "x-blob-bin": [blob.toString("base64"), small.toString("base64")] },
        }),
      );
      expect(seen.map((v) => Buffer.from(v as Buffer).toString("hex"))).to.deep.equal([
        blob.toString("hex"),
        small.toString("hex"),
      ]);
      expect(reply.headers["x-echo-bin"]).to.deep.equal([blob.toString("base64"), small.toString("base64")]);
      expect(reply.trailers["x-trailer-bin"]).to.deep.equal([small.toString("base64")]);
    });

    it("sends the remaining time as grpc-timeout (S15)", async () => {
      let deadline: grpc.Deadline | undefined;
      const { client } = await serve({
        [UNARY]: {
          kind: "unary",
          handler: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
            deadline = call.getDeadline();
            callback(null, call.request);
          },
        },
      });
      const deadlineMs = Date.now() + 5000;
      await client.unary(unary(UNARY, Buffer.from("x"), { deadlineMs }));
      const seenMs = deadline instanceof Date ? deadline.getTime() : Number(deadline);
      // The server computes its deadline from the remaining time on arrival.
      expect(seenMs).to.be.within(deadlineMs - 1000, deadlineMs + 50);
    });

    it("fails a slow call with DEADLINE_EXCEEDED, and one already past without sending it", async () => {
      let calls = 0;
      let cancelled = false;
      const { client } = await serve({
        [UNARY]: {
          kind: "unary",
          handler: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
            calls += 1;
            call.on("cancelled", () => {
              cancelled = true;
            });
            setTimeout(() => callback(null, call.request), 2000).unref();
          },
        },
      });
      const slow = await rejection(
        client.unary(unary(UNARY, Buffer.from("x"), { deadlineMs: Date.now() + 200 })),
      );
      expect(slow.code).to.equal(Code.DEADLINE_EXCEEDED);
      expect(slow.reason).to.equal(Reason.DEADLINE_EXCEEDED);
      await waitFor(() => cancelled, 2000, "the server sees the call end");

      const past = await rejection(
        client.unary(unary(UNARY, Buffer.from("x"), { deadlineMs: Date.now() - 1 })),
      );
      expect(past.code).to.equal(Code.DEADLINE_EXCEEDED);
      expect(calls).to.equal(1);
    });

    it("cancels the call on abort: the server sees it cancelled, the call rejects CANCELLED", async () => {
      let started = false;
      let cancelled = false;
      const { client } = await serve({
        [UNARY]: {
          kind: "unary",
          handler: (call: grpc.ServerUnaryCall<Buffer, Buffer>) => {
            started = true;
            call.on("cancelled", () => {
              cancelled = true;
            });
          },
        },
      });
      const abort = new AbortController();
      const pending = client.unary(unary(UNARY, Buffer.from("x"), { signal: abort.signal }));
      await waitFor(() => started, 2000, "the call reaches the server");
      abort.abort();
      const error = await rejection(pending);
      expect(error.code).to.equal(Code.CANCELLED);
      expect(error.reason).to.equal(Reason.CANCELLED);
      await waitFor(() => cancelled, 2000, "the server sees the cancellation");
    });

    it("runs 500 concurrent calls on one connection", async () => {
      const peers = new Set<string>();
      const { client } = await serve({
        [UNARY]: {
          kind: "unary",
          handler: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
            peers.add(call.getPeer());
            setImmediate(() => callback(null, call.request));
          },
        },
      });
      const replies = await Promise.all(
        Array.from({ length: 500 }, (_, i) => client.unary(unary(UNARY, numbered(i)))),
      );
      replies.forEach((reply, i) => {
        expect(Buffer.from(reply.payload).readUInt32BE(0)).to.equal(i);
      });
      expect(peers.size).to.equal(1);
    });

    it("never fails a call on the process's SETTINGS_MAX_CONCURRENT_STREAMS", async () => {
      let running = 0;
      let most = 0;
      const { client } = await serve(
        {
          [UNARY]: {
            kind: "unary",
            handler: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
              running += 1;
              most = Math.max(most, running);
              setTimeout(() => {
                running -= 1;
                callback(null, call.request);
              }, 5);
            },
          },
        },
        { "grpc.max_concurrent_streams": 4 },
      );
      const replies = await Promise.all(
        Array.from({ length: 200 }, (_, i) => client.unary(unary(UNARY, numbered(i)))),
      );
      expect(replies).to.have.length(200);
      // Several sessions of 4 streams each may run side by side, never more than that.
      expect(most).to.be.at.most(32);
    });

    it("fails only the call whose metadata key is malformed, not the connection it shares", async () => {
      const peers = new Set<string>();
      const { client } = await serve({
        [UNARY]: {
          kind: "unary",
          handler: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
            peers.add(call.getPeer());
            setTimeout(() => callback(null, call.request), 50);
          },
        },
      });
      await client.unary(unary(UNARY, Buffer.from("warm")));
      const slow = client.unary(unary(UNARY, Buffer.from("in flight")));
      const error = await rejection(
        client.unary(unary(UNARY, Buffer.from("x"), { metadata: { "Bad Key": ["v"] } })),
      );
      expect(error.code).to.equal(Code.INVALID_ARGUMENT);
      expect(Buffer.from((await slow).payload).toString()).to.equal("in flight");
      expect(peers.size).to.equal(1);
    });

    it("fails with INTERNAL unless exactly one response message arrives", async () => {
      const raw = await startRawH2Server((stream) => {
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(Buffer.concat([grpcFrame(Buffer.from("a")), grpcFrame(Buffer.from("b"))]));
      });
      later(() => raw.close());
      const client = connect(raw.port);
      later(() => client.close());
      const error = await rejection(client.unary(unary(UNARY, Buffer.from("x"))));
      expect(error.code).to.equal(Code.INTERNAL);
      expect(error.message).to.equal("expected one response message, got 2");
    });
  });

  describe("response framing and encodings", () => {
    it("reads messages packed into one DATA chunk and split across several", async () => {
      const messages = [Buffer.from("one"), Buffer.from("two"), Buffer.alloc(0), randomBytes(40_000)];
      const wire = Buffer.concat(messages.map((m) => grpcFrame(m)));
      const raw = await startRawH2Server((stream) => {
        stream.respond({ ":status": 200, "content-type": "application/grpc" }, { waitForTrailers: true });
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0", "x-done": "yes" }));
        // Three messages and two bytes of the fourth's prefix, then the rest in pieces.
        stream.write(wire.subarray(0, 3 * 5 + 6 + 2));
        setTimeout(() => {
          stream.write(wire.subarray(23, 30));
          setTimeout(() => stream.end(wire.subarray(30)), 10);
        }, 10);
      });
      later(() => raw.close());
      const client = connect(raw.port);
      later(() => client.close());
      const events = await collect(client.stream(streaming(SERVER_STREAM, fromArray([Buffer.from("go")]))));
      expect(events.map((e) => e.type)).to.deep.equal([
        "headers",
        "message",
        "message",
        "message",
        "message",
        "trailers",
      ]);
      expect(payloadsOf(events).map((p) => p.toString("hex"))).to.deep.equal(
        messages.map((m) => m.toString("hex")),
      );
      expect(events.at(-1)).to.deep.include({ type: "trailers", metadata: { "x-done": ["yes"] } });
    });

    it("decompresses gzip and deflate messages, and fails an encoding it does not know with INTERNAL", async () => {
      const raw = await startRawH2Server((stream, headers) => {
        const encoding = String(headers[":path"]).split("/")[2]?.toLowerCase() ?? "";
        stream.respond(
          { ":status": 200, "content-type": "application/grpc", "grpc-encoding": encoding },
          { waitForTrailers: true },
        );
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        const message = Buffer.from(`squeezed by ${encoding}`);
        stream.end(grpcFrame(encoding === "deflate" ? deflateSync(message) : gzipSync(message), true));
      });
      later(() => raw.close());
      const client = connect(raw.port);
      later(() => client.close());
      for (const encoding of ["gzip", "deflate"]) {
        const reply = await client.unary(unary(`/test.h2.v1.Echo/${encoding}`, Buffer.from("x")));
        expect(Buffer.from(reply.payload).toString()).to.equal(`squeezed by ${encoding}`);
      }
      const error = await rejection(client.unary(unary("/test.h2.v1.Echo/br", Buffer.from("x"))));
      expect(error.code).to.equal(Code.INTERNAL);
      expect(error.message).to.contain("grpc-encoding br");
    });

    it("keeps a compressed reply's wire form beside the inflated bytes, for the client side", async () => {
      const compressed = gzipSync(Buffer.from("squeezed"));
      const raw = await startRawH2Server((stream) => {
        stream.respond(
          { ":status": 200, "content-type": "application/grpc", "grpc-encoding": "gzip" },
          { waitForTrailers: true },
        );
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(grpcFrame(compressed, true));
      });
      later(() => raw.close());
      const client = connect(raw.port);
      later(() => client.close());
      const reply = await client.unary(unary(UNARY, Buffer.from("x")));
      expect(Buffer.from(reply.payload).toString()).to.equal("squeezed");
      const form = wireFormOf(reply.payload);
      expect(form?.encoding).to.equal("gzip");
      expect(Buffer.from(form?.compressed ?? []).equals(compressed)).to.equal(true);
    });

    it("maps a non-gRPC HTTP answer by gRPC's HTTP-to-code table", async () => {
      const raw = await startRawH2Server((stream, headers) => {
        const status = headers[":path"] === "/test.h2.v1.Echo/Missing" ? 404 : 503;
        stream.respond({ ":status": status, "content-type": "text/html" });
        stream.end("<html>busy</html>");
      });
      later(() => raw.close());
      const client = connect(raw.port);
      later(() => client.close());
      const busy = await rejection(client.unary(unary(UNARY, Buffer.from("x"))));
      expect(busy.code).to.equal(Code.UNAVAILABLE);
      expect(busy.reason).to.equal(Reason.PROCESS_UNAVAILABLE);
      expect(busy.message).to.contain("503");
      const missing = await rejection(client.unary(unary("/test.h2.v1.Echo/Missing", Buffer.from("x"))));
      expect(missing.code).to.equal(Code.UNIMPLEMENTED);
    });

    it("fails with INTERNAL when the response carries no grpc-status", async () => {
      const raw = await startRawH2Server((stream) => {
        stream.respond({ ":status": 200, "content-type": "application/grpc" });
        stream.end(grpcFrame(Buffer.from("a")));
      });
      later(() => raw.close());
      const client = connect(raw.port);
      later(() => client.close());
      const error = await rejection(client.unary(unary(UNARY, Buffer.from("x"))));
      expect(error.code).to.equal(Code.INTERNAL);
      expect(error.message).to.contain("grpc-status");
    });
  });

  describe("streams", () => {
    it("server streaming: 10k messages in order, the server held back while the caller lags", async () => {
      const total = 10_000;
      let written = 0;
      const { client } = await serve({
        [SERVER_STREAM]: {
          kind: "serverStream",
          handler: async (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
            for (let i = 0; i < total; i++) {
              written += 1;
              if (!call.write(numbered(i, 1024))) await new Promise((r) => call.once("drain", r));
            }
            call.end();
          },
        },
      });
      let count = 0;
      let writtenWhileLagging = 0;
      for await (const event of client.stream(streaming(SERVER_STREAM, fromArray([Buffer.from("go")])))) {
        if (event.type !== "message") continue;
        expect(Buffer.from(event.payload).readUInt32BE(0)).to.equal(count);
        count += 1;
        if (count === 1) {
          await sleep(300);
          writtenWhileLagging = written;
        }
      }
      expect(count).to.equal(total);
      // Flow control stopped the server long before it could write everything.
      expect(writtenWhileLagging)
        .to.be.above(0)
        .and.below(total / 2);
    });

    it("client streaming: 10k messages sent as the server takes them", async () => {
      const total = 10_000;
      let produced = 0;
      let producedWhilePaused = 0;
      const { client } = await serve({
        [CLIENT_STREAM]: {
          kind: "clientStream",
          handler: (
            call: grpc.ServerReadableStream<Buffer, Buffer>,
            callback: grpc.sendUnaryData<Buffer>,
          ) => {
            let received = 0;
            let inOrder = true;
            call.pause();
            setTimeout(() => {
              producedWhilePaused = produced;
              call.resume();
            }, 300);
            call.on("data", (message: Buffer) => {
              if (message.readUInt32BE(0) !== received) inOrder = false;
              received += 1;
            });
            call.on("end", () => callback(null, Buffer.from(`${received} ${inOrder}`)));
          },
        },
      });
      async function* requests(): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < total; i++) {
          produced += 1;
          yield numbered(i, 1024);
        }
      }
      const events = await collect(client.stream(streaming(CLIENT_STREAM, requests())));
      expect(payloadsOf(events).map(String)).to.deep.equal([`${total} true`]);
      expect(producedWhilePaused)
        .to.be.above(0)
        .and.below(total / 2);
    });

    it("bidi: 10k messages echoed in order, headers first and trailers last", async () => {
      const total = 10_000;
      const { client } = await serve({
        [BIDI]: {
          kind: "bidi",
          handler: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
            const headers = new grpc.Metadata();
            headers.set("x-bidi", "1");
            call.sendMetadata(headers);
            call.on("data", (message: Buffer) => {
              if (!call.write(message)) {
                call.pause();
                call.once("drain", () => call.resume());
              }
            });
            call.on("end", () => call.end());
          },
        },
      });
      async function* requests(): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < total; i++) yield numbered(i, 256);
      }
      let count = 0;
      const types: string[] = [];
      for await (const event of client.stream(streaming(BIDI, requests()))) {
        if (event.type === "message") {
          expect(Buffer.from(event.payload).readUInt32BE(0)).to.equal(count);
          count += 1;
          if (count % 2000 === 0) await sleep(20);
        } else {
          types.push(event.type);
          if (event.type === "headers") expect(event.metadata["x-bidi"]).to.deep.equal(["1"]);
        }
      }
      expect(count).to.equal(total);
      expect(types).to.deep.equal(["headers", "trailers"]);
    });

    it("a caller that stops reading early cancels the process's stream", async () => {
      let cancelled = false;
      const { client } = await serve({
        [SERVER_STREAM]: {
          kind: "serverStream",
          handler: async (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
            call.on("cancelled", () => {
              cancelled = true;
            });
            for (let i = 0; !cancelled; i++) {
              if (!call.write(numbered(i))) await new Promise((r) => setTimeout(r, 5));
              else await new Promise((r) => setImmediate(r));
            }
          },
        },
      });
      let count = 0;
      for await (const event of client.stream(streaming(SERVER_STREAM, fromArray([Buffer.from("go")])))) {
        if (event.type === "message") count += 1;
        if (count === 5) break;
      }
      await waitFor(() => cancelled, 2000, "the server sees the cancellation");
    });

    it("fails a stream with the process's status, after the messages it sent", async () => {
      const { client } = await serve({
        [SERVER_STREAM]: {
          kind: "serverStream",
          handler: (call: grpc.ServerWritableStream<Buffer, Buffer>) => {
            call.write(Buffer.from("first"));
            call.emit("error", { code: grpc.status.ABORTED, details: "stopped halfway" });
          },
        },
      });
      const seen: string[] = [];
      const error = await rejection(
        (async () => {
          for await (const event of client.stream(streaming(SERVER_STREAM, fromArray([Buffer.from("go")])))) {
            seen.push(event.type === "message" ? Buffer.from(event.payload).toString() : event.type);
          }
        })(),
      );
      expect(seen).to.deep.equal(["headers", "first"]);
      expect(error.code).to.equal(Code.ABORTED);
      expect(error.message).to.equal("stopped halfway");
    });

    it("refuses streaming calls to an envelope-native process with UNIMPLEMENTED", async () => {
      const client = connect(1, true);
      later(() => client.close());
      const error = await rejection(collect(client.stream(streaming(BIDI, fromArray([])))));
      expect(error.code).to.equal(Code.UNIMPLEMENTED);
    });
  });

  describe("connections", () => {
    it("fails with UNAVAILABLE, naming the cause, when the process refuses the connection", async () => {
      const server = await startPassthroughServer({ [UNARY]: echoUnary });
      const port = server.port;
      await server.close();
      const client = connect(port);
      later(() => client.close());
      const error = await rejection(client.unary(unary(UNARY, Buffer.from("x"))));
      expect(error.code).to.equal(Code.UNAVAILABLE);
      expect(error.reason).to.equal(Reason.PROCESS_UNAVAILABLE);
      expect(error.message).to.contain("ECONNREFUSED");
    });

    it("fails with UNAVAILABLE when the peer takes the connection but never speaks HTTP/2", async () => {
      const sockets = new Set<Socket>();
      const silent = createServer((socket) => {
        sockets.add(socket);
        socket.on("error", () => {});
      });
      await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
      later(
        () =>
          new Promise<void>((resolve) => {
            for (const socket of sockets) socket.destroy();
            silent.close(() => resolve());
          }),
      );
      const client = createGrpcTransport({ connectTimeoutMs: 200 }).connect({
        name: "silent",
        location: new URL(`grpc://127.0.0.1:${(silent.address() as AddressInfo).port}`),
        envelope: false,
      });
      later(() => client.close());
      const error = await rejection(client.unary(unary(UNARY, Buffer.from("x"))));
      expect(error.code).to.equal(Code.UNAVAILABLE);
      expect(error.message).to.contain("no HTTP/2 settings within 200 ms");
      expect(() => createGrpcTransport({ connectTimeoutMs: 0 })).to.throw(BridgeError, /connectTimeoutMs/);
    });

    it("fails calls in flight with UNAVAILABLE when the connection dies", async () => {
      let started = false;
      const server = await startPassthroughServer({
        [UNARY]: {
          kind: "unary",
          handler: () => {
            started = true;
          },
        },
      });
      const client = connect(server.port);
      later(() => client.close());
      const pending = client.unary(unary(UNARY, Buffer.from("x")));
      await waitFor(() => started, 2000, "the call reaches the server");
      await server.close();
      const error = await rejection(pending);
      expect(error.code).to.equal(Code.UNAVAILABLE);
      expect(error.reason).to.equal(Reason.PROCESS_UNAVAILABLE);
    });

    it("reconnects to a process restarted on the same port", async () => {
      const first = await startPassthroughServer({ [UNARY]: echoUnary });
      const client = connect(first.port);
      later(() => client.close());
      expect(Buffer.from((await client.unary(unary(UNARY, Buffer.from("a")))).payload).toString()).to.equal(
        "a",
      );
      await first.close();
      const second = await startPassthroughServer({ [UNARY]: echoUnary }, {}, first.port);
      later(() => second.close());
      expect(Buffer.from((await client.unary(unary(UNARY, Buffer.from("b")))).payload).toString()).to.equal(
        "b",
      );
    });

    it("moves to a new connection after the process sends GOAWAY on an idle one", async () => {
      const peers = new Set<string>();
      const { client } = await serve(
        {
          [UNARY]: {
            kind: "unary",
            handler: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
              peers.add(call.getPeer());
              callback(null, call.request);
            },
          },
        },
        // grpc-js ends every connection with GOAWAY after this age.
        { "grpc.max_connection_age_ms": 100, "grpc.max_connection_age_grace_ms": 100 },
      );
      await client.unary(unary(UNARY, Buffer.from("a")));
      await sleep(400);
      await client.unary(unary(UNARY, Buffer.from("b")));
      expect(peers.size).to.equal(2);
    });

    it("moves to a new connection after the process shuts down gracefully and comes back", async () => {
      const first = await startPassthroughServer({ [UNARY]: echoUnary });
      const client = connect(first.port);
      later(() => client.close());
      await client.unary(unary(UNARY, Buffer.from("a")));
      await new Promise<void>((resolve, reject) =>
        first.server.tryShutdown((error) => (error ? reject(error) : resolve())),
      );
      const second = await startPassthroughServer({ [UNARY]: echoUnary }, {}, first.port);
      later(() => second.close());
      expect(Buffer.from((await client.unary(unary(UNARY, Buffer.from("b")))).payload).toString()).to.equal(
        "b",
      );
    });

    it("lets an idle process exit while its connection stays open", async () => {
      const { server } = await serve({ [UNARY]: echoUnary });
      const module = new URL("../../../adapters/grpc/h2-outbound.js", import.meta.url).href;
      // One call, then nothing: no close(), so only an unref'd socket stays behind.
      const script = `
        const { createGrpcTransport } = await import(${JSON.stringify(module)});
        const client = createGrpcTransport().connect({
          name: "echo", location: new URL("grpc://127.0.0.1:${server.port}"), envelope: false,
        });
        const reply = await client.unary({
          operation: { path: ${JSON.stringify(UNARY)} }, messageId: "m", sessionId: undefined, seq: 0,
          oneWay: false, principal: "p", correlation: {}, metadata: {}, traceparent: undefined,
          tracestate: undefined, deadlineMs: undefined, signal: new AbortController().signal,
          codec: "proto", payload: Buffer.from("bye"),
        });
        process.stdout.write(Buffer.from(reply.payload).toString());
      `;
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
        stdio: ["ignore", "pipe", "inherit"],
      });
      let out = "";
      child.stdout.on("data", (chunk: Buffer) => {
        out += chunk.toString();
      });
      const code = await new Promise<number | null>((resolve) => {
        const kill = setTimeout(() => child.kill(), 10_000);
        child.on("exit", (exitCode) => {
          clearTimeout(kill);
          resolve(exitCode);
        });
      });
      expect(out).to.equal("bye");
      expect(code, "the child exits by itself").to.equal(0);
    });

    it("shares one connection among the processes at one location until the last closes", async () => {
      const peers = new Set<string>();
      const server = await startPassthroughServer({
        [UNARY]: {
          kind: "unary",
          handler: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
            peers.add(call.getPeer());
            callback(null, call.request);
          },
        },
      });
      later(() => server.close());
      const transport = createGrpcTransport();
      const location = new URL(`grpc://127.0.0.1:${server.port}`);
      const orders = transport.connect({ name: "orders", location, envelope: false });
      const billing = transport.connect({ name: "billing", location, envelope: false });
      later(() => billing.close());
      await orders.unary(unary(UNARY, Buffer.from("a")));
      await billing.unary(unary(UNARY, Buffer.from("b")));
      expect(peers.size).to.equal(1);
      await orders.close();
      expect((await rejection(orders.unary(unary(UNARY, Buffer.from("c"))))).code).to.equal(Code.UNAVAILABLE);
      await billing.unary(unary(UNARY, Buffer.from("d")));
      expect(peers.size, "the shared connection outlives the first close").to.equal(1);
    });

    it("close() is idempotent, and later calls fail with UNAVAILABLE", async () => {
      const { client } = await serve({ [UNARY]: echoUnary });
      await client.unary(unary(UNARY, Buffer.from("a")));
      await client.close();
      await client.close();
      const error = await rejection(client.unary(unary(UNARY, Buffer.from("b"))));
      expect(error.code).to.equal(Code.UNAVAILABLE);
    });
  });
});
