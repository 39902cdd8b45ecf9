import { expect } from "chai";
import { decodeGrpcMessage } from "../../../adapters/grpc/grpc-wire-headers.js";
import { frameEnvelope, readEnvelopes } from "../../../adapters/http/connect-framing.js";
import { createJsonCodec, type JsonCodec } from "../../../bridge/codec/json-codec.js";
import { decodeErrorInfo, decodeStatus, ERROR_INFO_TYPE_URL } from "../../../bridge/errors/rich-status.js";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";

/** A response's frames and its trailers frame parsed as header lines (PROTOCOL-WEB.md). */
function parse(body: Buffer): { messages: Buffer[]; trailers: Record<string, string> } {
  const frames = readEnvelopes(body, 1 << 20);
  const messages = frames.filter((f) => (f.flags & 0x80) === 0).map((f) => f.data);
  const last = frames.at(-1);
  expect(last?.flags).to.equal(0x80);
  const trailers: Record<string, string> = {};
  for (const line of String(last?.data.toString("latin1")).split("\r\n")) {
    const at = line.indexOf(":");
    if (at > 0) trailers[line.slice(0, at).trim().toLowerCase()] = line.slice(at + 1).trim();
  }
  return { messages, trailers };
}

describe("HTTP inbound: gRPC-Web, binary and text", function () {
  this.timeout(30_000);
  let harness: LabHarness;
  let base: string;
  let json: JsonCodec;
  const op = (value: object) => frameEnvelope(0, json.toBinary("test.lab.v1.Op", JSON.stringify(value)));
  const result = (bytes: Buffer) =>
    JSON.parse(json.toJson("test.lab.v1.Result", bytes)) as Record<string, unknown>;

  before(async () => {
    harness = await startLabHarness("memory", {
      adjust: (config) => ({ ...config, listeners: { ...config.listeners, http: "127.0.0.1:0" } }),
    });
    base = `http://${harness.runtime.http?.address}`;
    json = createJsonCodec(harness.runtime.bridge.contracts);
  });
  after(() => harness?.close());

  it("binary: a unary call answers with its message and a trailers frame; a fault keeps code, message, reason (S14)", async () => {
    const response = await fetch(`${base}/test.lab.v1.Counter/Start`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto", "x-grpc-web": "1", "grpc-timeout": "10S" },
      body: op({ key: "web-1", text: "w" }),
    });
    expect(response.status).to.equal(200);
    expect(response.headers.get("content-type")).to.equal("application/grpc-web+proto");
    const sessionId = response.headers.get("sb-session-id");
    const { messages, trailers } = parse(Buffer.from(await response.arrayBuffer()));
    expect(trailers["grpc-status"]).to.equal("0");
    expect(trailers["x-lab-trailer"]).to.equal("done");
    expect(messages).to.have.length(1);
    const out = result(messages[0] as Buffer);
    expect(out.sessionId).to.equal(sessionId);
    expect(Number(out.deadlineMs)).to.be.greaterThan(0).and.at.most(10_000);

    const failed = await fetch(`${base}/test.lab.v1.Counter/Do`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web+proto" },
      body: op({ key: "nobody" }),
    });
    const fault = parse(Buffer.from(await failed.arrayBuffer())).trailers;
    expect(fault["grpc-status"]).to.equal("5");
    expect(decodeGrpcMessage(fault["grpc-message"] ?? "")).to.include("no live session");
    const status = decodeStatus(Buffer.from(fault["grpc-status-details-bin"] ?? "", "base64"));
    const info = status.details.find((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
    expect(decodeErrorInfo(info?.value ?? new Uint8Array()).reason).to.equal("CORRELATION_ERROR");
  });

  it("text: server streaming in base64, each message then the trailers", async () => {
    await fetch(`${base}/test.lab.v1.Counter/Start`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: '{"key":"web-2"}',
    });
    const response = await fetch(`${base}/test.lab.v1.Counter/Watch`, {
      method: "POST",
      headers: { "content-type": "application/grpc-web-text", accept: "application/grpc-web-text" },
      body: op({ key: "web-2", count: 3 }).toString("base64"),
    });
    expect(response.headers.get("content-type")).to.equal("application/grpc-web-text+proto");
    const text = await response.text();
    // Each write is its own base64 run (padded): decode them one by one, as clients do.
    const runs = text.match(/[A-Za-z0-9+/]+=*/g) ?? [];
    const body = Buffer.concat(runs.map((run) => Buffer.from(run, "base64")));
    const { messages, trailers } = parse(body);
    expect(messages).to.have.length(3);
    expect(trailers["grpc-status"]).to.equal("0");
  });
});
