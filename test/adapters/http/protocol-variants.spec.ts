import type { DescService } from "@bufbuild/protobuf";
import {
  type CallOptions,
  Code as ConnectCode,
  ConnectError,
  createClient,
  type Transport,
} from "@connectrpc/connect";
import {
  compressionGzip,
  createConnectTransport,
  createGrpcTransport,
  createGrpcWebTransport,
} from "@connectrpc/connect-node";
import { expect } from "chai";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";

interface LabResult {
  readonly key: string;
  readonly seq: string;
  readonly log: string[];
}
type LabOp = { key: string; text?: string; count?: number; fail?: number };
interface CounterClient {
  start(op: LabOp, options?: CallOptions): Promise<LabResult>;
  do(op: LabOp, options?: CallOptions): Promise<LabResult>;
  watch(op: LabOp, options?: CallOptions): AsyncIterable<LabResult>;
}

/**
 * Every protocol the HTTP port speaks, with each codec and compression a stock client
 * uses: gRPC with JSON messages (transcoded at the edge), gRPC-Web with JSON and with
 * gzip-compressed requests, and Connect streaming with gzip-compressed requests. Each
 * drives a session: a start, a numbered call, a stream and a fault.
 */
describe("HTTP inbound: protocols, codecs and compression on one port", function () {
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

  const variants: { name: string; transport: (baseUrl: string) => Transport }[] = [
    {
      name: "gRPC with JSON",
      transport: (baseUrl) => createGrpcTransport({ baseUrl, useBinaryFormat: false }),
    },
    {
      name: "gRPC-Web with JSON over HTTP/1.1",
      transport: (baseUrl) => createGrpcWebTransport({ baseUrl, httpVersion: "1.1", useBinaryFormat: false }),
    },
    {
      name: "gRPC-Web with gzip-compressed requests",
      transport: (baseUrl) =>
        createGrpcWebTransport({
          baseUrl,
          httpVersion: "2",
          sendCompression: compressionGzip,
          compressMinBytes: 0,
        }),
    },
    {
      name: "Connect with gzip-compressed requests",
      transport: (baseUrl) =>
        createConnectTransport({
          baseUrl,
          httpVersion: "2",
          sendCompression: compressionGzip,
          compressMinBytes: 0,
        }),
    },
  ];
  for (const variant of variants) {
    it(`${variant.name}: a session with a numbered call, a stream and a fault (S1, S7, S14)`, async () => {
      const client = createClient(
        counter,
        variant.transport(`http://${harness.runtime.http?.address}`),
      ) as unknown as CounterClient;
      const key = `variant-${variant.name}`;
      await client.start({ key, text: "a" });
      const done = await client.do({ key, text: "b" }, { headers: { "sb-seq": "1" } });
      expect(done.seq).to.equal("1");
      expect(done.log).to.deep.equal(["Start:a", "Do:b"]);
      const items: string[] = [];
      for await (const item of client.watch({ key, count: 2 })) items.push(item.key);
      expect(items).to.deep.equal([key, key]);
      const gap = await client.do({ key }, { headers: { "sb-seq": "7" } }).catch((e: unknown) => e);
      expect(gap).to.be.instanceOf(ConnectError);
      expect((gap as ConnectError).code).to.equal(ConnectCode.FailedPrecondition);
    });
  }
});
