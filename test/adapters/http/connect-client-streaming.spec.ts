import http from "node:http";
import type { DescService } from "@bufbuild/protobuf";
import { type CallOptions, Code as ConnectCode, ConnectError, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { END_STREAM_FLAG, frameEnvelope, readEnvelopes } from "../../../adapters/http/connect-framing.js";
import { createJsonCodec, type JsonCodec } from "../../../bridge/codec/json-codec.js";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";

type LabOp = { key: string; text?: string };
interface LabResult {
  readonly key: string;
  readonly text: string;
  readonly sessionId: string;
  readonly log: string[];
}
interface CounterClient {
  start(op: LabOp, options?: CallOptions): Promise<LabResult>;
  upload(ops: AsyncIterable<LabOp>, options?: CallOptions): Promise<LabResult>;
  chat(ops: AsyncIterable<LabOp>, options?: CallOptions): AsyncIterable<LabResult>;
}

async function* from<T>(items: readonly T[]): AsyncGenerator<T> {
  yield* items;
}

/** A raw HTTP/1.1 POST (fetch cannot stream a body out and read while it does). */
function post(
  url: string,
  headers: Record<string, string>,
  body: Buffer,
): Promise<{ status: number; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const request = http.request(url, { method: "POST", headers, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on("data", (c: Buffer) => chunks.push(c));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks) }));
      response.on("error", reject);
    });
    request.on("error", reject);
    request.end(body);
  });
}

/**
 * Client and bidirectional streaming over the Connect protocol, inbound: a stock Connect
 * client (@connectrpc/connect-node, built from the descriptors) against the bridge in
 * front of the lab process; client streaming over gRPC-Web too.
 */
describe("HTTP inbound: client and bidi streaming over Connect, client streaming over gRPC-Web", function () {
  this.timeout(30_000);
  let harness: LabHarness;
  let counter: DescService;
  let base: string;
  let json: JsonCodec;
  const maxPayloadBytes = 64 * 1024;

  before(async () => {
    harness = await startLabHarness("memory", {
      adjust: (config) => ({
        ...config,
        listeners: { ...config.listeners, http: "127.0.0.1:0" },
        defaults: { ...config.defaults, maxPayloadBytes },
      }),
    });
    base = `http://${harness.runtime.http?.address}`;
    json = createJsonCodec(harness.runtime.bridge.contracts);
    const found = harness.runtime.bridge.contracts.registry.getService("test.lab.v1.Counter");
    if (found === undefined) throw new Error("no test.lab.v1.Counter in the contracts");
    counter = found;
  });
  after(() => harness?.close());

  for (const variant of [
    { httpVersion: "1.1" as const, useBinaryFormat: false },
    { httpVersion: "2" as const, useBinaryFormat: true },
  ]) {
    it(`client streaming over HTTP/${variant.httpVersion} (${variant.useBinaryFormat ? "proto" : "JSON"}): every message reaches the process, in order, in the session (S1, S6)`, async () => {
      const client = createClient(
        counter,
        createConnectTransport({ baseUrl: base, ...variant }),
      ) as unknown as CounterClient;
      const key = `upload-${variant.httpVersion}`;
      const started = await client.start({ key, text: "a" });
      const texts = Array.from({ length: 50 }, (_, i) => `m${i}`);
      const uploaded = await client.upload(from(texts.map((text) => ({ key, text }))));
      expect(uploaded.sessionId).to.equal(started.sessionId);
      expect(uploaded.text).to.equal(texts.join(","));
    });
  }

  it("bidi streaming over HTTP/2: answers come while the client is still sending (S1)", async () => {
    const client = createClient(
      counter,
      createConnectTransport({ baseUrl: base, httpVersion: "2", useBinaryFormat: true }),
    ) as unknown as CounterClient;
    const key = "chat-h2";
    const started = await client.start({ key, text: "a" });
    // The next message is sent only after the answer to the last one arrived: a server that
    // waited for the whole request before answering would never let this finish.
    let answered: (() => void) | undefined;
    let round = 0;
    async function* talk(): AsyncGenerator<LabOp> {
      for (round = 0; round < 3; round++) {
        const next = new Promise<void>((resolve) => {
          answered = resolve;
        });
        yield { key, text: `t${round}` };
        await next;
      }
    }
    const echoes: string[] = [];
    for await (const reply of client.chat(talk())) {
      expect(reply.sessionId).to.equal(started.sessionId);
      echoes.push(reply.text);
      answered?.();
    }
    expect(echoes).to.deep.equal(["echo:t0", "echo:t1", "echo:t2"]);
  });

  it("bidi streaming over HTTP/1.1 is refused with unimplemented (the protocol needs HTTP/2); nothing reaches the process", async () => {
    const body = frameEnvelope(0, Buffer.from(JSON.stringify({ key: "chat-h1", text: "x" })));
    const answer = await post(
      `${base}/test.lab.v1.Counter/Chat`,
      { "content-type": "application/connect+json", "connect-protocol-version": "1" },
      body,
    );
    expect(answer.status).to.equal(200);
    const frames = readEnvelopes(answer.body, 1 << 20);
    expect(frames).to.have.length(1);
    expect(frames[0]?.flags).to.equal(END_STREAM_FLAG);
    const end = JSON.parse(String(frames[0]?.data.toString("utf8"))) as {
      error: { code: string; message: string };
    };
    expect(end.error.code).to.equal("unimplemented");
    expect(end.error.message).to.include("HTTP/2");
  });

  it("a streamed message over the size limit ends the call with resource_exhausted before it is read (DESIGN §7)", async () => {
    const client = createClient(
      counter,
      createConnectTransport({ baseUrl: base, httpVersion: "2", useBinaryFormat: true }),
    ) as unknown as CounterClient;
    const key = "upload-big";
    await client.start({ key });
    const failed = await client
      .upload(
        from([
          { key, text: "small" },
          { key, text: "x".repeat(maxPayloadBytes + 1) },
        ]),
      )
      .catch((e: unknown) => e);
    expect(failed).to.be.instanceOf(ConnectError);
    expect((failed as ConnectError).code).to.equal(ConnectCode.ResourceExhausted);
    // The port keeps serving.
    const after = await client.upload(from([{ key, text: "again" }]));
    expect(after.text).to.equal("again");
  });

  it("gRPC-Web client streaming: the body's messages are the upload; bidi is refused", async () => {
    const key = "web-upload";
    const op = (value: object) => frameEnvelope(0, json.toBinary("test.lab.v1.Op", JSON.stringify(value)));
    const started = await fetch(`${base}/test.lab.v1.Counter/Start`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: op({ key }),
    });
    expect(started.status).to.equal(200);
    const response = await fetch(`${base}/test.lab.v1.Counter/Upload`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: Buffer.concat([op({ key, text: "p" }), op({ key, text: "q" }), op({ key, text: "r" })]),
    });
    const frames = readEnvelopes(Buffer.from(await response.arrayBuffer()), 1 << 20);
    const trailers = String(frames.at(-1)?.data.toString("latin1"));
    expect(trailers).to.match(/grpc-status:\s*0/);
    const result = JSON.parse(json.toJson("test.lab.v1.Result", frames[0]?.data as Buffer)) as LabResult;
    expect(result.text).to.equal("p,q,r");
    expect(result.sessionId).to.equal(started.headers.get("sb-session-id"));

    const chat = await fetch(`${base}/test.lab.v1.Counter/Chat`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: op({ key, text: "p" }),
    });
    const chatFrames = readEnvelopes(Buffer.from(await chat.arrayBuffer()), 1 << 20);
    const chatTrailers = String(
      chatFrames.at(-1)?.data.toString("latin1") ?? chat.headers.get("grpc-status"),
    );
    expect(`${chatTrailers} ${chat.headers.get("grpc-status")}`).to.match(/12/);
  });
});
