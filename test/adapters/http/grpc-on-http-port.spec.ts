import type { DescService } from "@bufbuild/protobuf";
import { type CallOptions, Code as ConnectCode, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport, createGrpcTransport } from "@connectrpc/connect-node";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";

interface LabResult {
  readonly key: string;
  readonly sessionId: string;
  readonly seq: string;
  readonly log: string[];
}
type LabOp = { key: string; text?: string; count?: number };
interface CounterClient {
  start(op: LabOp, options?: CallOptions): Promise<LabResult>;
  do(op: LabOp, options?: CallOptions): Promise<LabResult>;
  peek(op: LabOp, options?: CallOptions): Promise<LabResult>;
  finish(op: LabOp, options?: CallOptions): Promise<LabResult>;
  watch(op: LabOp, options?: CallOptions): AsyncIterable<LabResult>;
}

/**
 * The HTTP port speaks the gRPC protocol too: a gRPC client pointed at it (HTTP/2,
 * application/grpc) reaches the same operations, sessions, SessionService and health as
 * on the gRPC port, while Connect clients keep using the same port.
 */
describe("HTTP inbound: gRPC clients on the HTTP port", function () {
  this.timeout(30_000);
  let harness: LabHarness;
  let counter: DescService;

  before(async () => {
    harness = await startLabHarness("memory", {
      adjust: (config) => ({ ...config, listeners: { ...config.listeners, http: "127.0.0.1:0" } }),
    });
    const found = harness.runtime.bridge.contracts.registry.getService("test.lab.v1.Counter");
    if (found === undefined) throw new Error("no test.lab.v1.Counter in the contracts");
    counter = found;
  });
  after(() => harness?.close());

  it("a gRPC client drives a session on the HTTP port that a Connect client then resumes there (S1, S7, S12)", async () => {
    const base = `http://${harness.runtime.http?.address}`;
    const overGrpc = createClient(
      counter,
      createGrpcTransport({ baseUrl: base }),
    ) as unknown as CounterClient;
    const overConnect = createClient(
      counter,
      createConnectTransport({ baseUrl: base, httpVersion: "2", useBinaryFormat: true }),
    ) as unknown as CounterClient;
    let sessionId: string | null = null;
    await overGrpc.start({ key: "g1", text: "a" }, { onHeader: (h) => (sessionId = h.get("sb-session-id")) });
    expect(sessionId).to.be.a("string");
    const done = await overGrpc.do({ key: "g1", text: "b" }, { headers: { "sb-seq": "1" } });
    expect(done.seq).to.equal("1");
    const gap = await overGrpc.do({ key: "g1" }, { headers: { "sb-seq": "5" } }).catch((e: unknown) => e);
    expect((gap as ConnectError).code).to.equal(ConnectCode.FailedPrecondition);
    const items: string[] = [];
    for await (const item of overGrpc.watch({ key: "g1", count: 2 })) items.push(item.key);
    expect(items).to.have.length(2);
    const peek = await overConnect.peek({ key: "g1" });
    expect(peek.log).to.deep.equal(["Start:a", "Do:b", "Watch", "Peek"]);
    await overConnect.finish({ key: "g1" });
    const after = await overGrpc.do({ key: "g1" }).catch((e: unknown) => e);
    expect(after).to.be.instanceOf(ConnectError);
    expect((after as ConnectError).code).to.equal(ConnectCode.NotFound);
  });

  it("grpc-js reaches health and an unknown method gets UNIMPLEMENTED on the HTTP port", async () => {
    const address = harness.runtime.http?.address ?? "";
    const client = new grpc.Client(address, grpc.credentials.createInsecure());
    try {
      const call = (path: string): Promise<{ error: grpc.ServiceError | null; reply: Buffer | undefined }> =>
        new Promise((resolve) => {
          client.makeUnaryRequest(
            path,
            (b: Buffer) => b,
            (b: Buffer) => b,
            Buffer.alloc(0),
            (error, reply) => resolve({ error: error ?? null, reply }),
          );
        });
      const health = await call("/grpc.health.v1.Health/Check");
      expect(health.error).to.equal(null);
      // HealthCheckResponse { status: SERVING (1) }: field 1, varint 1.
      expect(health.reply?.toString("hex")).to.equal("0801");
      const unknown = await call("/test.lab.v1.Counter/Nope");
      expect(unknown.error?.code).to.equal(grpc.status.UNIMPLEMENTED);
    } finally {
      client.close();
    }
  });

  it("a gRPC request with a codec the bridge cannot read gets the gRPC port's answer (415), not a Connect one", async () => {
    const http2 = await import("node:http2");
    const session = http2.connect(`http://${harness.runtime.http?.address}`);
    try {
      const status = await new Promise<{ status: number; contentType: string | undefined }>(
        (resolve, reject) => {
          const stream = session.request({
            ":method": "POST",
            ":path": "/test.lab.v1.Counter/Start",
            "content-type": "application/grpc+cbor",
            te: "trailers",
          });
          stream.on("response", (headers) =>
            resolve({
              status: Number(headers[":status"]),
              contentType: headers["content-type"] as string | undefined,
            }),
          );
          stream.on("error", reject);
          stream.end();
        },
      );
      // The gRPC dispatcher answers content types it cannot read with HTTP 415, as on the gRPC port.
      expect(status.status).to.equal(415);
    } finally {
      session.close();
    }
  });
});
