import type { DescService } from "@bufbuild/protobuf";
import { type CallOptions, Code as ConnectCode, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";

interface LabResult {
  readonly key: string;
  readonly sessionId: string;
  readonly seq: string;
  readonly deadlineMs: bigint;
  readonly metadataKeys: string[];
  readonly log: string[];
}

type LabOp = { key: string; text?: string; count?: number };

/** The Counter methods the test calls, as the descriptor-built client has them. */
interface CounterClient {
  start(op: LabOp, options?: CallOptions): Promise<LabResult>;
  do(op: LabOp, options?: CallOptions): Promise<LabResult>;
  peek(op: LabOp, options?: CallOptions): Promise<LabResult>;
  finish(op: LabOp, options?: CallOptions): Promise<LabResult>;
  watch(op: LabOp, options?: CallOptions): AsyncIterable<LabResult>;
}

/**
 * A stock Connect client (@connectrpc/connect-node), built from the contract's descriptors
 * with no generated code, drives a whole session through the HTTP listener over HTTP/1.1
 * with JSON and over HTTP/2 with proto.
 */
describe("HTTP inbound: a stock Connect client drives a whole session", function () {
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

  for (const variant of [
    { httpVersion: "1.1" as const, useBinaryFormat: false },
    { httpVersion: "2" as const, useBinaryFormat: true },
  ]) {
    it(`HTTP/${variant.httpVersion}, ${variant.useBinaryFormat ? "proto" : "JSON"}: start, numbered calls, shared reads, a stream, faults and the end (S1, S4, S7, S12, S14)`, async () => {
      const transport = createConnectTransport({
        baseUrl: `http://${harness.runtime.http?.address}`,
        ...variant,
      });
      const client = createClient(counter, transport) as unknown as CounterClient;
      const key = `connect-${variant.httpVersion}`;
      let sessionId: string | null = null;
      const started = await client.start(
        { key, text: "a" },
        { onHeader: (h: Headers) => (sessionId = h.get("sb-session-id")) },
      );
      expect(sessionId).to.be.a("string");
      expect(started.sessionId).to.equal(sessionId);

      const done = await client.do(
        { key, text: "b" },
        { headers: { "sb-seq": "1", "x-tenant": "acme" }, timeoutMs: 10_000 },
      );
      expect(done.seq).to.equal("1");
      expect(done.metadataKeys).to.include("x-tenant");
      expect(Number(done.deadlineMs)).to.be.greaterThan(0).and.at.most(10_000);

      const gap = await client.do({ key }, { headers: { "sb-seq": "9" } }).catch((e: unknown) => e);
      expect(gap).to.be.instanceOf(ConnectError);
      expect((gap as ConnectError).code).to.equal(ConnectCode.FailedPrecondition);

      const peek = await client.peek({ key });
      expect(peek.log).to.deep.equal(["Start:a", "Do:b", "Peek"]);

      const texts: string[] = [];
      for await (const result of client.watch({ key, count: 3 })) texts.push(result.key);
      expect(texts).to.have.length(3);

      await client.finish({ key, text: "z" });
      const after = await client.do({ key }).catch((e: unknown) => e);
      expect((after as ConnectError).code).to.equal(ConnectCode.NotFound);
    });
  }
});
