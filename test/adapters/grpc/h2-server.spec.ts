import http2 from "node:http2";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { type GrpcHandler, type GrpcServer, startGrpcServer } from "../../../adapters/grpc/h2-server.js";
import type { GrpcServerCall } from "../../../adapters/grpc/h2-server-call.js";
import { createHealth, ServingStatus } from "../../../adapters/grpc/health-service.js";
import { BridgeError } from "../../../bridge/errors/bridge-error.js";
import { Code } from "../../../bridge/errors/code.js";
import { Reason } from "../../../bridge/errors/reason.js";
import { failure } from "../../support/grpc-call.js";

const pass = (b: Buffer): Buffer => b;
const MAX = 4 * 1024 * 1024;

/** A grpc-js client call with raw Buffer payloads. */
function unary(
  client: grpc.Client,
  path: string,
  body: Buffer,
  md = new grpc.Metadata(),
  options: grpc.CallOptions = {},
) {
  return new Promise<{ body: Buffer; headers: grpc.Metadata; trailers: grpc.Metadata }>((resolve, reject) => {
    let headers = new grpc.Metadata();
    let value: Buffer | undefined;
    let error: grpc.ServiceError | null = null;
    const call = client.makeUnaryRequest(path, pass, pass, body, md, options, (e, v) => {
      error = e;
      value = v;
    });
    call.on("metadata", (m) => {
      headers = m;
    });
    call.on("status", (s) =>
      error ? reject(error) : resolve({ body: value as Buffer, headers, trailers: s.metadata }),
    );
  });
}

/**
 * The inbound gRPC server on node:http2, driven by real grpc-js clients and raw HTTP/2:
 * routing, status and metadata, deadlines, cancellation, large and compressed messages,
 * streaming with backpressure, health.
 */
describe("inbound gRPC server (node:http2)", () => {
  let server: GrpcServer;
  let client: grpc.Client;
  const seen: { deadlineMs: number | undefined; metadata: Record<string, readonly string[]> }[] = [];
  let cancelled = 0;
  /** Calls of /test.Svc/Park: held open, their signal never read by the handler. */
  const parked: GrpcServerCall[] = [];
  const health = createHealth(["test.Svc"]);

  const handlers = new Map<string, GrpcHandler>([
    [
      "/test.Svc/Echo",
      (call) =>
        void call.message().then(
          async (body) => {
            seen.push({ deadlineMs: call.deadlineMs, metadata: call.metadata });
            call.sendHeaders({ "x-head": ["h"] }, { "sb-session-id": "S1" });
            await call.write(body);
            call.end({ "x-tail": ["t"], "x-bin": ["AAEC"] });
          },
          (error: unknown) => call.fail(BridgeError.from(error)),
        ),
    ],
    [
      "/test.Svc/Fail",
      (call) =>
        void call.message().then(() =>
          call.fail(
            new BridgeError(Code.FAILED_PRECONDITION, "WHY_NOT", "naïve 100% failure", {
              metadata: { k: "v" },
            }),
            {
              "sb-session-id": "S2",
            },
          ),
        ),
    ],
    [
      "/test.Svc/Hang",
      (call) => {
        call.signal.addEventListener("abort", () => {
          cancelled += 1;
        });
        void call.message();
      },
    ],
    [
      "/test.Svc/Park",
      (call) => {
        parked.push(call);
        void call.message().catch(() => undefined);
      },
    ],
    [
      "/test.Svc/Count",
      (call) =>
        void (async () => {
          const n = (await call.message()).readUInt32BE(0);
          for (let i = 0; i < n; i++) {
            const b = Buffer.alloc(4);
            b.writeUInt32BE(i);
            await call.write(b);
          }
          call.end({});
        })(),
    ],
    [
      "/test.Svc/Sum",
      (call) =>
        void (async () => {
          let sum = 0;
          let n = 0;
          for await (const m of call.messages()) {
            sum += m.readUInt32BE(0);
            n += 1;
          }
          const b = Buffer.alloc(8);
          b.writeUInt32BE(n, 0);
          b.writeUInt32BE(sum, 4);
          await call.write(b);
          call.end({});
        })(),
    ],
    [
      "/test.Svc/Chat",
      (call) =>
        void (async () => {
          for await (const m of call.messages()) await call.write(m);
          call.end({});
        })(),
    ],
    ...health.handlers,
  ]);

  before(async () => {
    server = await startGrpcServer({ address: "127.0.0.1:0", handlers, maxMessageBytes: MAX });
    client = new grpc.Client(server.address, grpc.credentials.createInsecure(), {
      "grpc.max_receive_message_length": -1,
      "grpc.max_send_message_length": -1,
    });
  });

  after(async () => {
    client.close();
    await server.drain(100);
  });

  it("answers a unary call with headers, the message, trailers and the bridge's own fields", async () => {
    const out = await unary(client, "/test.Svc/Echo", Buffer.from("hello"));
    expect(out.body.toString()).to.equal("hello");
    expect(out.headers.get("x-head")).to.deep.equal(["h"]);
    expect(out.headers.get("sb-session-id")).to.deep.equal(["S1"]);
    expect(out.trailers.get("x-tail")).to.deep.equal(["t"]);
    expect((out.trailers.get("x-bin")[0] as Buffer).equals(Buffer.from([0, 1, 2]))).to.equal(true);
  });

  it("passes metadata through, binary included, and the deadline as an absolute time", async () => {
    const md = new grpc.Metadata();
    md.set("x-custom", "v");
    md.set("x-data-bin", Buffer.from([9, 8, 7]));
    const before = Date.now();
    await unary(client, "/test.Svc/Echo", Buffer.from("x"), md, { deadline: before + 5000 });
    const last = seen.at(-1);
    expect(last?.metadata["x-custom"]).to.deep.equal(["v"]);
    expect(
      Buffer.from(last?.metadata["x-data-bin"]?.[0] ?? "", "base64").equals(Buffer.from([9, 8, 7])),
    ).to.equal(true);
    expect(last?.metadata).to.not.have.property("grpc-timeout");
    expect(last?.metadata).to.not.have.property(":path");
    // The deadline travels as time remaining, so the server's absolute deadline is the
    // client's plus the request's transit; a busy machine may take a second or two for it.
    // The bounds only rule out a dropped or misread timeout (none, or off by a unit).
    expect(last?.deadlineMs).to.be.within(before + 2500, before + 7500);
  });

  it("carries a failure as status, percent-encoded message, ErrorInfo and the bridge's fields", async () => {
    const err = await failure(unary(client, "/test.Svc/Fail", Buffer.from("x")));
    expect((err as grpc.ServiceError).code).to.equal(grpc.status.FAILED_PRECONDITION);
    expect((err as grpc.ServiceError).details).to.equal("naïve 100% failure");
    expect((err as grpc.ServiceError).metadata.get("sb-session-id")).to.deep.equal(["S2"]);
    expect((err as grpc.ServiceError).metadata.get("grpc-status-details-bin")).to.have.length(1);
  });

  it("answers an unknown method with UNIMPLEMENTED", async () => {
    const err = await failure(unary(client, "/test.Svc/Nope", Buffer.from("x")));
    expect((err as grpc.ServiceError).code).to.equal(grpc.status.UNIMPLEMENTED);
  });

  it("moves messages of several MiB both ways, and refuses ones over the limit", async () => {
    const big = Buffer.alloc(3 * 1024 * 1024, 0x61);
    const out = await unary(client, "/test.Svc/Echo", big);
    expect(out.body.equals(big)).to.equal(true);
    const err = await failure(unary(client, "/test.Svc/Echo", Buffer.alloc(MAX + 1)));
    expect((err as grpc.ServiceError).code).to.equal(grpc.status.RESOURCE_EXHAUSTED);
  });

  it("decodes gzip-compressed requests", async () => {
    const gz = new grpc.Client(server.address, grpc.credentials.createInsecure(), {
      "grpc.default_compression_algorithm": 2,
    });
    try {
      const body = Buffer.alloc(10_000, 0x62);
      const out = await unary(gz, "/test.Svc/Echo", body);
      expect(out.body.equals(body)).to.equal(true);
    } finally {
      gz.close();
    }
  });

  it("aborts the call's signal when the client cancels", async () => {
    const before = cancelled;
    const call = client.makeUnaryRequest("/test.Svc/Hang", pass, pass, Buffer.from("x"), () => {});
    await new Promise((r) => setTimeout(r, 50));
    call.cancel();
    const until = Date.now() + 2000;
    while (cancelled === before && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(cancelled).to.equal(before + 1);
  });

  it("builds the call's signal on first read, already aborted when the client cancelled before", async () => {
    const call = client.makeUnaryRequest("/test.Svc/Park", pass, pass, Buffer.from("x"), () => {});
    const until = Date.now() + 5000;
    while (parked.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    const inbound = parked[0] as GrpcServerCall;
    expect(inbound.cancelled).to.equal(false);
    call.cancel();
    while (!inbound.cancelled && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
    expect(inbound.cancelled).to.equal(true);
    // Read for the first time after the cancel: it must say so, as one built up front would.
    expect(inbound.signal.aborted).to.equal(true);
    expect(inbound.signal).to.equal(inbound.signal);
  });

  it("streams 5000 responses and sums 5000 requests, with backpressure", async () => {
    const n = Buffer.alloc(4);
    n.writeUInt32BE(5000);
    const stream = client.makeServerStreamRequest("/test.Svc/Count", pass, pass, n);
    let i = 0;
    for await (const m of stream as AsyncIterable<Buffer>) {
      expect(m.readUInt32BE(0)).to.equal(i);
      i += 1;
    }
    expect(i).to.equal(5000);
    const sum = await new Promise<Buffer>((resolve, reject) => {
      const call = client.makeClientStreamRequest("/test.Svc/Sum", pass, pass, (e, v) =>
        e ? reject(e) : resolve(v as Buffer),
      );
      for (let k = 0; k < 5000; k++) {
        const b = Buffer.alloc(4);
        b.writeUInt32BE(k);
        call.write(b);
      }
      call.end();
    });
    expect(sum.readUInt32BE(0)).to.equal(5000);
    expect(sum.readUInt32BE(4)).to.equal((4999 * 5000) / 2);
  });

  it("echoes a bidi stream and finishes after the client half-closes", async () => {
    const call = client.makeBidiStreamRequest("/test.Svc/Chat", pass, pass);
    const got: string[] = [];
    const done = new Promise<void>((resolve, reject) => {
      call.on("data", (m: Buffer) => got.push(m.toString()));
      call.on("error", reject);
      call.on("status", () => resolve());
    });
    for (const word of ["a", "b", "c"]) call.write(Buffer.from(word));
    call.end();
    await done;
    expect(got).to.deep.equal(["a", "b", "c"]);
  });

  it("answers non-gRPC requests with plain HTTP statuses", async () => {
    const session = http2.connect(`http://${server.address}`);
    try {
      const status = (headers: http2.OutgoingHttpHeaders) =>
        new Promise<number>((resolve) => {
          const req = session.request(headers);
          req.on("response", (h) => resolve(Number(h[":status"])));
          req.end();
        });
      expect(await status({ ":method": "GET", ":path": "/test.Svc/Echo" })).to.equal(405);
      expect(
        await status({ ":method": "POST", ":path": "/test.Svc/Echo", "content-type": "text/plain" }),
      ).to.equal(415);
    } finally {
      session.close();
    }
  });

  it("serves health: Check, List and Watch, which follows NOT_SERVING", async () => {
    const req = (service: string) => {
      const b = Buffer.from(service);
      return Buffer.concat([Buffer.from([0x0a, b.length]), b]);
    };
    const check = await unary(client, "/grpc.health.v1.Health/Check", req("test.Svc"));
    expect([...check.body]).to.deep.equal([0x08, ServingStatus.SERVING]);
    const unknown = await failure(unary(client, "/grpc.health.v1.Health/Check", req("nope")));
    expect((unknown as grpc.ServiceError).code).to.equal(grpc.status.NOT_FOUND);
    const list = await unary(client, "/grpc.health.v1.Health/List", Buffer.alloc(0));
    expect(list.body.includes(Buffer.from("test.Svc"))).to.equal(true);
    const watch = client.makeServerStreamRequest("/grpc.health.v1.Health/Watch", pass, pass, req("test.Svc"));
    const statuses: number[] = [];
    await new Promise<void>((resolve) => {
      watch.on("data", (m: Buffer) => {
        statuses.push(m[1] ?? 0);
        if (statuses.length === 1) health.setAll(ServingStatus.NOT_SERVING);
        if (statuses.length === 2) resolve();
      });
    });
    watch.cancel();
    watch.on("error", () => {});
    expect(statuses).to.deep.equal([ServingStatus.SERVING, ServingStatus.NOT_SERVING]);
    health.setAll(ServingStatus.SERVING);
  });

  it("reports a failing handler as an error, not a crash", async () => {
    const broken = await startGrpcServer({
      address: "127.0.0.1:0",
      maxMessageBytes: MAX,
      handlers: new Map([
        [
          "/t.S/M",
          () => {
            throw new BridgeError(Code.INTERNAL, Reason.INTERNAL, "boom");
          },
        ],
      ]),
    });
    const c = new grpc.Client(broken.address, grpc.credentials.createInsecure());
    try {
      const err = await failure(unary(c, "/t.S/M", Buffer.from("x")));
      expect((err as grpc.ServiceError).code).to.equal(grpc.status.INTERNAL);
      expect((err as grpc.ServiceError).details).to.equal("boom");
    } finally {
      c.close();
      await broken.drain(100);
    }
  });

  it("drains: a call in flight finishes, new connections are refused", async () => {
    const slow = await startGrpcServer({
      address: "127.0.0.1:0",
      maxMessageBytes: MAX,
      handlers: new Map<string, GrpcHandler>([
        [
          "/t.S/Slow",
          (call) =>
            void call.message().then(async (b) => {
              await new Promise((r) => setTimeout(r, 300));
              await call.write(b);
              call.end({});
            }),
        ],
      ]),
    });
    const c = new grpc.Client(slow.address, grpc.credentials.createInsecure());
    try {
      const inFlight = unary(c, "/t.S/Slow", Buffer.from("late"));
      await new Promise((r) => setTimeout(r, 50));
      const drained = slow.drain(5000);
      expect((await inFlight).body.toString()).to.equal("late");
      await drained;
      const fresh = new grpc.Client(slow.address, grpc.credentials.createInsecure());
      const err = await failure(
        unary(fresh, "/t.S/Slow", Buffer.from("x"), new grpc.Metadata(), { deadline: Date.now() + 1000 }),
      );
      fresh.close();
      expect([grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED]).to.include(
        (err as grpc.ServiceError).code,
      );
    } finally {
      c.close();
    }
  });
});
