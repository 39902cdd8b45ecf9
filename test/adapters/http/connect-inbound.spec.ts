import http2 from "node:http2";
import net from "node:net";
import { gzipSync } from "node:zlib";
import { expect } from "chai";
import { frameEnvelope, readEnvelopes } from "../../../adapters/http/connect-framing.js";
import { createJsonCodec, type JsonCodec } from "../../../bridge/codec/json-codec.js";
import { decodeErrorInfo } from "../../../bridge/errors/rich-status.js";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";

const COUNTER = "/test.lab.v1.Counter";

interface Answer {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

/** Connect over HTTP/1.1 with fetch, as a browser or script would call the bridge. */
async function post(
  base: string,
  path: string,
  body: string,
  headers: Record<string, string> = {},
): Promise<Answer> {
  const response = await fetch(`${base}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

function reasonOf(text: string): string {
  const body = JSON.parse(text) as { details?: { type: string; value: string }[] };
  const info = body.details?.find((d) => d.type === "google.rpc.ErrorInfo");
  return info === undefined ? "" : decodeErrorInfo(Buffer.from(info.value, "base64")).reason;
}

describe("HTTP inbound: the Connect protocol", function () {
  this.timeout(30_000);
  let harness: LabHarness;
  let base: string;
  let json: JsonCodec;

  before(async () => {
    harness = await startLabHarness("memory", {
      adjust: (config) => ({
        ...config,
        listeners: { ...config.listeners, http: "127.0.0.1:0" },
        defaults: { ...config.defaults, maxPayloadBytes: 64 * 1024 },
      }),
    });
    const http = harness.runtime.http;
    if (http === undefined) throw new Error("the HTTP listener did not start");
    base = `http://${http.address}`;
    json = createJsonCodec(harness.runtime.bridge.contracts);
  });
  after(() => harness?.close());

  it("S1, S7, S8, S15: unary JSON starts and resumes a session; session headers, custom metadata and the deadline cross, sb-* and hop-by-hop do not", async () => {
    const started = await post(base, `${COUNTER}/Start`, '{"key":"h1","text":"a"}');
    expect(started.status).to.equal(200);
    expect(started.headers.get("content-type")).to.equal("application/json");
    const sessionId = started.headers.get("sb-session-id");
    expect(sessionId).to.be.a("string").and.not.equal("");
    expect(JSON.parse(started.text).sessionId).to.equal(sessionId);
    expect(started.headers.get("x-lab-header")).to.equal("Start");
    expect(started.headers.get("trailer-x-lab-trailer")).to.equal("done");

    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const done = await post(base, `${COUNTER}/Do`, '{"key":"h1","text":"b"}', {
      "Sb-Session-Id": sessionId as string,
      "Sb-Seq": "1",
      "Idempotency-Key": "k-1",
      "X-Custom": "yes",
      "Sb-Principal": "mallory",
      "Connect-Timeout-Ms": "20000",
      "Connect-Protocol-Version": "1",
      traceparent,
    });
    expect(done.status, done.text).to.equal(200);
    const result = JSON.parse(done.text) as Record<string, unknown>;
    expect(result.seq).to.equal("1");
    expect(result.traceparent).to.match(/^00-0af7651916cd43dd8448eb211c80319c-/);
    expect(result.principal).to.equal("anonymous");
    expect(Number(result.deadlineMs)).to.be.greaterThan(0).and.at.most(20_000);
    const keys = result.metadataKeys as string[];
    expect(keys).to.include("x-custom");
    expect(keys).to.include("idempotency-key");
    for (const key of keys) expect(key).to.not.match(/^(connection|host|content-type|connect-|accept)/);
    expect(result.log).to.deep.equal(["Start:a", "Do:b"]);

    // S8: the same key and payload returns the recorded outcome without a second delivery.
    const again = await post(base, `${COUNTER}/Do`, '{"key":"h1","text":"b"}', {
      "Sb-Session-Id": sessionId as string,
      "Sb-Seq": "1",
      "Idempotency-Key": "k-1",
    });
    expect(again.status).to.equal(200);
    expect(JSON.parse(again.text).log).to.deep.equal(["Start:a", "Do:b"]);
    // S7: a gap is FAILED_PRECONDITION (HTTP 400) with its reason.
    const gap = await post(base, `${COUNTER}/Do`, '{"key":"h1"}', { "Sb-Seq": "5" });
    expect(gap.status).to.equal(400);
    expect(JSON.parse(gap.text).code).to.equal("failed_precondition");
    expect(reasonOf(gap.text)).to.equal("OUT_OF_SEQUENCE");
  });

  it("unary proto over h2c with a plain HTTP/2 client", async () => {
    const session = http2.connect(base);
    try {
      const request = json.toBinary("test.lab.v1.Op", '{"key":"h2","text":"p"}');
      const stream = session.request({
        ":method": "POST",
        ":path": `${COUNTER}/Start`,
        "content-type": "application/proto",
        "connect-protocol-version": "1",
      });
      stream.end(request);
      const chunks: Buffer[] = [];
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        stream.once("response", resolve);
        stream.once("error", reject);
      });
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      expect(headers[":status"]).to.equal(200);
      expect(headers["content-type"]).to.equal("application/proto");
      const result = JSON.parse(json.toJson("test.lab.v1.Result", Buffer.concat(chunks)));
      expect(result.sessionId).to.equal(headers["sb-session-id"]);
      expect(result.text).to.equal("p");
    } finally {
      session.close();
    }
  });

  it("S14: a process fault arrives as a Connect error with the table's HTTP status, as the process sent it", async () => {
    const answer = await post(base, `${COUNTER}/Start`, '{"key":"h3","failCode":7}');
    expect(answer.status).to.equal(403);
    const body = JSON.parse(answer.text);
    expect(body.code).to.equal("permission_denied");
    expect(body.message).to.equal("asked to fail with 7");
    // The process sent no details; the bridge adds none to a process's status.
    expect(body.details ?? []).to.deep.equal([]);
    // S4: a non-starter that matches nothing.
    const missing = await post(base, `${COUNTER}/Do`, '{"key":"nobody"}');
    expect(missing.status).to.equal(404);
    expect(reasonOf(missing.text)).to.equal("CORRELATION_ERROR");
  });

  it("S4: malformed JSON and a wrong field type are INVALID_ARGUMENT naming the field path", async () => {
    const wrongType = await post(base, `${COUNTER}/Start`, '{"key":"h4","count":"many"}');
    expect(wrongType.status).to.equal(400);
    const body = JSON.parse(wrongType.text);
    expect(body.code).to.equal("invalid_argument");
    expect(body.message).to.include("at count");
    expect(reasonOf(wrongType.text)).to.equal("MALFORMED_MESSAGE");
    const broken = await post(base, `${COUNTER}/Start`, '{"key":');
    expect(broken.status).to.equal(400);
    expect(JSON.parse(broken.text).code).to.equal("invalid_argument");
  });

  it("an unknown service or method is UNIMPLEMENTED with 404; an unsupported content type 415 with a Connect error body", async () => {
    const unknown = await post(base, "/test.lab.v1.Counter/Nope", "{}");
    expect(unknown.status).to.equal(404);
    expect(JSON.parse(unknown.text).code).to.equal("unimplemented");
    const noService = await post(base, "/no.Such/Thing", "{}");
    expect(noService.status).to.equal(404);
    const plain = await post(base, `${COUNTER}/Start`, "{}", { "content-type": "text/plain" });
    expect(plain.status).to.equal(415);
    expect(plain.headers.get("content-type")).to.equal("application/json");
    expect(JSON.parse(plain.text).code).to.equal("unimplemented");
    const badTimeout = await post(base, `${COUNTER}/Start`, '{"key":"h5"}', { "connect-timeout-ms": "soon" });
    expect(badTimeout.status).to.equal(400);
  });

  it("a body over the limit is RESOURCE_EXHAUSTED (429) before the rest is read, and the bridge keeps serving", async () => {
    // Declared length over the limit: answered at once, while the client has sent only
    // the headers and a few bytes; the connection closes so the rest is never read.
    const raw = await new Promise<string>((resolve, reject) => {
      const url = new URL(base);
      const socket = net.connect(Number(url.port), url.hostname);
      let text = "";
      socket.on("data", (chunk) => {
        text += chunk.toString("latin1");
      });
      socket.on("close", () => resolve(text));
      socket.on("error", reject);
      socket.write(
        `POST ${COUNTER}/Start HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 10000000\r\n\r\n{"key":`,
      );
    });
    expect(raw).to.match(/^HTTP\/1\.1 429 /);
    expect(raw).to.include('"code":"resource_exhausted"');

    // Chunked, with no declared length: refused at the chunk that crosses the limit.
    const big = JSON.stringify({ key: "h6", text: "x".repeat(100 * 1024) });
    const chunked = await fetch(`${base}${COUNTER}/Start`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: new Blob([big]).stream(),
      duplex: "half",
    } as RequestInit);
    expect(chunked.status).to.equal(429);
    expect(((await chunked.json()) as { code: string }).code).to.equal("resource_exhausted");

    const fine = await post(base, `${COUNTER}/Start`, '{"key":"h6"}');
    expect(fine.status).to.equal(200);
  });

  it("gzip request bodies are decoded, and one that inflates past the limit is RESOURCE_EXHAUSTED", async () => {
    const small = await fetch(`${base}${COUNTER}/Start`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
      body: gzipSync('{"key":"gz-1","text":"zipped"}'),
    });
    expect(small.status).to.equal(200);
    expect(((await small.json()) as { text: string }).text).to.equal("zipped");
    // A few hundred bytes on the wire, megabytes once inflated: refused while inflating.
    const bomb = gzipSync(JSON.stringify({ key: "gz-2", text: "x".repeat(4 * 1024 * 1024) }));
    expect(bomb.length).to.be.lessThan(64 * 1024);
    const refused = await fetch(`${base}${COUNTER}/Start`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
      body: bomb,
    });
    expect(refused.status).to.equal(429);
    const unknown = await fetch(`${base}${COUNTER}/Start`, {
      method: "POST",
      headers: { "content-type": "application/json", "content-encoding": "br" },
      body: "{}",
    });
    expect(unknown.status).to.equal(501);
  });

  it("GET serves shared operations and refuses exclusive ones", async () => {
    await post(base, `${COUNTER}/Start`, '{"key":"h7","text":"g"}');
    const message = encodeURIComponent('{"key":"h7"}');
    const peek = await fetch(`${base}${COUNTER}/Peek?connect=v1&encoding=json&message=${message}`);
    expect(peek.status).to.equal(200);
    expect(((await peek.json()) as { log: string[] }).log).to.deep.equal(["Start:g", "Peek"]);
    const exclusive = await fetch(`${base}${COUNTER}/Do?connect=v1&encoding=json&message=${message}`);
    expect(exclusive.status).to.equal(405);
  });

  it("server streaming in the Connect streaming format, ending with the end-stream message", async () => {
    await post(base, `${COUNTER}/Start`, '{"key":"h8"}');
    const response = await fetch(`${base}${COUNTER}/Watch`, {
      method: "POST",
      headers: { "content-type": "application/connect+json", "connect-protocol-version": "1" },
      body: frameEnvelope(0, Buffer.from('{"key":"h8","count":3}')),
    });
    expect(response.status).to.equal(200);
    expect(response.headers.get("content-type")).to.equal("application/connect+json");
    expect(response.headers.get("sb-session-id")).to.be.a("string");
    const envelopes = readEnvelopes(Buffer.from(await response.arrayBuffer()), 1 << 20);
    expect(envelopes.map((e) => e.flags)).to.deep.equal([0, 0, 0, 2]);
    const end = JSON.parse(String(envelopes[3]?.data));
    expect(end.error).to.equal(undefined);

    const failing = await fetch(`${base}${COUNTER}/Watch`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: frameEnvelope(0, Buffer.from('{"key":"nobody","count":3}')),
    });
    expect(failing.status).to.equal(200);
    const last = readEnvelopes(Buffer.from(await failing.arrayBuffer()), 1 << 20).at(-1);
    expect(last?.flags).to.equal(2);
    expect(JSON.parse(String(last?.data)).error.code).to.equal("not_found");
  });
});
