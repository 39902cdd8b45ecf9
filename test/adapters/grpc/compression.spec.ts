import type http2 from "node:http2";
import { gzipSync } from "node:zlib";
import { expect } from "chai";
import { decodeEnvelope } from "../../../bridge/engine/envelope-codec.js";
import type { BridgeRuntime } from "../../../cli/bridge-runtime.js";
import { EnvelopeKind } from "../../../sdk/gen/sessionbridge/v1/envelope.js";
import { grpcFrame, type RawH2Server, startRawH2Server } from "../../support/passthrough-server.js";
import { connectRaw, encodeOp, rawCall, startBridgeAt } from "./raw-h2-client.js";

/** What the process received on one stream. */
interface Seen {
  readonly headers: http2.IncomingHttpHeaders;
  readonly data: Buffer;
}

/** A reply message as the process sends it: plain, or gzip with the flag set. */
interface Reply {
  readonly bytes: Buffer;
  readonly compressed: boolean;
}

/**
 * Compression passes through the bridge (a proxy must not change what the ends
 * negotiated): a message a client compressed reaches a process that reads gzip in the
 * same bytes with the flag set, a compressed reply reaches a client that reads gzip the
 * same way, and the journal holds the decompressed payload.
 */
describe("compression through the bridge", () => {
  let process: RawH2Server;
  let bridge: BridgeRuntime;
  let session: http2.ClientHttp2Session;
  const seen: Seen[] = [];
  let replies: Reply[] = [];
  /** What the process says it reads. */
  let accepts = "identity,gzip";

  before(async () => {
    process = await startRawH2Server((stream, headers) => {
      const chunks: Buffer[] = [];
      stream.on("error", () => {});
      stream.on("data", (c: Buffer) => chunks.push(c));
      stream.on("end", () => {
        seen.push({ headers, data: Buffer.concat(chunks) });
        const compressed = replies.some((r) => r.compressed);
        stream.respond(
          {
            ":status": 200,
            "content-type": "application/grpc",
            "grpc-accept-encoding": accepts,
            ...(compressed ? { "grpc-encoding": "gzip" } : {}),
          },
          { waitForTrailers: true },
        );
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        for (const reply of replies) stream.write(grpcFrame(reply.bytes, reply.compressed));
        stream.end();
      });
    });
    bridge = await startBridgeAt(process.port);
    session = await connectRaw(bridge.grpc.address);
    // Before the process has said what it reads, the client's choice goes on unchanged,
    // as it would on a direct call.
    replies = [{ bytes: Buffer.alloc(0), compressed: false }];
    const compressed = gzipSync(encodeOp({ key: "learn" }));
    const first = await rawCall(session, {
      path: "/test.lab.v1.Counter/Start",
      headers: { "grpc-encoding": "gzip" },
      body: [grpcFrame(compressed, true)],
    });
    expect(first.grpcStatus, first.grpcMessage).to.equal(0);
    const learned = seen.at(-1) as Seen;
    expect(learned.headers["grpc-encoding"]).to.equal("gzip");
    expect(learned.data.equals(grpcFrame(compressed, true))).to.equal(true);
  });
  after(async () => {
    session.close();
    await bridge.stop(1000);
    await process.close();
  });

  it("client compressed unary: the process gets the client's bytes, flag set; the journal the payload", async () => {
    replies = [{ bytes: Buffer.alloc(0), compressed: false }];
    const plain = encodeOp({ key: "cu", text: "z".repeat(2000) });
    const compressed = gzipSync(plain);
    const outcome = await rawCall(session, {
      path: "/test.lab.v1.Counter/Start",
      headers: { "grpc-encoding": "gzip" },
      body: [grpcFrame(compressed, true)],
    });
    expect(outcome.grpcStatus, outcome.grpcMessage).to.equal(0);
    const got = seen.at(-1) as Seen;
    expect(got.headers["grpc-encoding"]).to.equal("gzip");
    expect(got.data.equals(grpcFrame(compressed, true))).to.equal(true);

    const sessionId = String(outcome.headers["sb-session-id"]);
    const requests = [];
    for await (const entry of bridge.bridge.sessions.history(sessionId, {}, "anonymous")) {
      const envelope = decodeEnvelope(entry.envelope);
      if (envelope.kind === EnvelopeKind.ENVELOPE_KIND_REQUEST) requests.push(envelope);
    }
    expect(requests).to.have.length(1);
    expect(Buffer.from(requests[0]?.payload ?? []).equals(plain)).to.equal(true);
  });

  it("client compressed unary: an uncompressed message stays uncompressed", async () => {
    replies = [{ bytes: Buffer.alloc(0), compressed: false }];
    const plain = encodeOp({ key: "cu-plain" });
    const outcome = await rawCall(session, {
      path: "/test.lab.v1.Counter/Start",
      headers: { "grpc-encoding": "gzip" },
      body: [grpcFrame(plain)],
    });
    expect(outcome.grpcStatus, outcome.grpcMessage).to.equal(0);
    expect((seen.at(-1) as Seen).data.equals(grpcFrame(plain))).to.equal(true);
  });

  it("server compressed unary: a client that reads gzip gets the process's bytes, flag set", async () => {
    const reply = gzipSync(Buffer.from("a reply ".repeat(200)));
    replies = [{ bytes: reply, compressed: true }];
    const outcome = await rawCall(session, {
      path: "/test.lab.v1.Counter/Start",
      headers: { "grpc-accept-encoding": "identity,gzip" },
      body: [grpcFrame(encodeOp({ key: "su" }))],
    });
    expect(outcome.grpcStatus, outcome.grpcMessage).to.equal(0);
    expect(outcome.headers["grpc-encoding"]).to.equal("gzip");
    expect(outcome.data.equals(grpcFrame(reply, true))).to.equal(true);
  });

  it("server compressed unary: a client that reads only identity gets it inflated", async () => {
    const plain = Buffer.from("a reply ".repeat(200));
    replies = [{ bytes: gzipSync(plain), compressed: true }];
    const outcome = await rawCall(session, {
      path: "/test.lab.v1.Counter/Start",
      headers: { "grpc-accept-encoding": "identity" },
      body: [grpcFrame(encodeOp({ key: "su-identity" }))],
    });
    expect(outcome.grpcStatus, outcome.grpcMessage).to.equal(0);
    expect(outcome.headers["grpc-encoding"]).to.equal(undefined);
    expect(outcome.data.equals(grpcFrame(plain))).to.equal(true);
  });

  it("client compressed streaming: each message keeps its own flag and bytes", async () => {
    replies = [{ bytes: Buffer.alloc(0), compressed: false }];
    await rawCall(session, {
      path: "/test.lab.v1.Counter/Start",
      body: [grpcFrame(encodeOp({ key: "cs" }))],
    });
    const first = gzipSync(encodeOp({ key: "cs", text: "one" }));
    const second = encodeOp({ key: "cs", text: "two" });
    const outcome = await rawCall(session, {
      path: "/test.lab.v1.Counter/Upload",
      headers: { "grpc-encoding": "gzip" },
      body: [grpcFrame(first, true), grpcFrame(second)],
    });
    expect(outcome.grpcStatus, outcome.grpcMessage).to.equal(0);
    const got = seen.at(-1) as Seen;
    expect(got.headers["grpc-encoding"]).to.equal("gzip");
    expect(got.data.equals(Buffer.concat([grpcFrame(first, true), grpcFrame(second)]))).to.equal(true);
  });

  it("server compressed streaming: each reply keeps its own flag and bytes", async () => {
    replies = [{ bytes: Buffer.alloc(0), compressed: false }];
    await rawCall(session, {
      path: "/test.lab.v1.Counter/Start",
      body: [grpcFrame(encodeOp({ key: "ss" }))],
    });
    const first = gzipSync(Buffer.from("first ".repeat(100)));
    const second = Buffer.from("second");
    replies = [
      { bytes: first, compressed: true },
      { bytes: second, compressed: false },
    ];
    const outcome = await rawCall(session, {
      path: "/test.lab.v1.Counter/Watch",
      headers: { "grpc-accept-encoding": "identity,gzip" },
      body: [grpcFrame(encodeOp({ key: "ss" }))],
    });
    expect(outcome.grpcStatus, outcome.grpcMessage).to.equal(0);
    expect(outcome.headers["grpc-encoding"]).to.equal("gzip");
    expect(outcome.data.equals(Buffer.concat([grpcFrame(first, true), grpcFrame(second)]))).to.equal(true);
  });

  it("sends identity to a process that does not read the client's encoding", async () => {
    accepts = "identity";
    replies = [{ bytes: Buffer.alloc(0), compressed: false }];
    await rawCall(session, {
      path: "/test.lab.v1.Counter/Start",
      body: [grpcFrame(encodeOp({ key: "id-1" }))],
    });
    const plain = encodeOp({ key: "id-2" });
    const outcome = await rawCall(session, {
      path: "/test.lab.v1.Counter/Start",
      headers: { "grpc-encoding": "gzip" },
      body: [grpcFrame(gzipSync(plain), true)],
    });
    expect(outcome.grpcStatus, outcome.grpcMessage).to.equal(0);
    const got = seen.at(-1) as Seen;
    expect(got.headers["grpc-encoding"]).to.equal(undefined);
    expect(got.data.equals(grpcFrame(plain))).to.equal(true);
    accepts = "identity,gzip";
  });
});
