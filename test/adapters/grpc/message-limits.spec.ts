import type http2 from "node:http2";
import zlib from "node:zlib";
import type * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { MAX_STREAMS_PER_CONNECTION } from "../../../adapters/grpc/h2-server.js";
import { Code } from "../../../bridge/errors/code.js";
import type { BridgeRuntime } from "../../../cli/bridge-runtime.js";
import { failure, unaryCall } from "../../support/grpc-call.js";
import { type LabHarness, reasonOf, startLabHarness } from "../../support/lab-harness.js";
import { grpcFrame, type RawH2Server, startRawH2Server } from "../../support/passthrough-server.js";
import {
  connectRaw,
  counterClient,
  encodeOp,
  memoryInUse,
  type RawOutcome,
  rawCall,
  startBridgeAt,
} from "./raw-h2-client.js";

const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

/** A length prefix announcing `length` bytes, and a few of them: the rest never comes. */
function hugePrefix(length: number): Buffer {
  const frame = Buffer.alloc(5 + 16);
  frame.writeUInt32BE(length, 1);
  return frame;
}

/** A gzip stream of `bytes` zeros: tiny on the wire, huge once inflated. */
function gzipBomb(bytes: number): Buffer {
  return zlib.gzipSync(Buffer.alloc(bytes), { level: 9 });
}

/**
 * Lengths and sizes are checked before the bridge allocates or inflates anything: a
 * 5-byte prefix announcing gigabytes, or a small compressed message that inflates to
 * gigabytes, is answered RESOURCE_EXHAUSTED at once, from a client or from a process.
 */
describe("message limits of the gRPC adapter", () => {
  describe("from clients", () => {
    let harness: LabHarness;
    let session: http2.ClientHttp2Session;

    before(async () => {
      harness = await startLabHarness("memory");
      session = await connectRaw(harness.address);
    });
    after(async () => {
      session.close();
      await harness.close();
    });

    it("answers prefixes announcing 1–2 GiB with RESOURCE_EXHAUSTED without waiting or allocating", async () => {
      const before = memoryInUse();
      const calls: Promise<RawOutcome>[] = [];
      for (let i = 0; i < 8; i++) {
        // The request side stays open: the answer must not wait for a body that never comes.
        calls.push(
          rawCall(session, {
            path: i % 2 === 0 ? "/test.lab.v1.Counter/Start" : "/test.lab.v1.Counter/Upload",
            body: [hugePrefix(GiB + i * (GiB / 8))],
            end: false,
          }),
        );
      }
      const outcomes = await Promise.all(calls);
      const grown = memoryInUse() - before;
      for (const outcome of outcomes) {
        expect(outcome.grpcStatus, outcome.grpcMessage).to.equal(Code.RESOURCE_EXHAUSTED);
        expect(outcome.grpcMessage).to.match(/exceeds the limit/);
      }
      // 8 streams announced 12 GiB between them; a fraction of one would show.
      expect(grown).to.be.below(64 * MiB);
    });

    it("caps the streams one connection may open at once", () => {
      expect(session.remoteSettings.maxConcurrentStreams).to.equal(MAX_STREAMS_PER_CONNECTION);
    });

    it("refuses a prefix split across DATA frames the same way", async () => {
      const prefix = hugePrefix(2 * GiB - 1);
      const outcome = await rawCall(session, {
        path: "/test.lab.v1.Counter/Start",
        body: [prefix.subarray(0, 2), prefix.subarray(2)],
        end: false,
      });
      expect(outcome.grpcStatus).to.equal(Code.RESOURCE_EXHAUSTED);
    });

    it("answers a gzip bomb with RESOURCE_EXHAUSTED, not INTERNAL", async () => {
      const bomb = gzipBomb(256 * MiB);
      expect(bomb.length).to.be.below(MiB);
      const outcome = await rawCall(session, {
        path: "/test.lab.v1.Counter/Start",
        headers: { "grpc-encoding": "gzip" },
        body: [grpcFrame(bomb, true)],
      });
      expect(outcome.grpcStatus, outcome.grpcMessage).to.equal(Code.RESOURCE_EXHAUSTED);
      expect(outcome.grpcMessage).to.match(/inflates to more than the limit/);
    });

    it("still reads an ordinary gzip request", async () => {
      const outcome = await rawCall(session, {
        path: "/test.lab.v1.Counter/Start",
        headers: { "grpc-encoding": "gzip" },
        body: [grpcFrame(zlib.gzipSync(encodeOp({ key: "gzip-ok", text: "x".repeat(1000) })), true)],
      });
      expect(outcome.grpcStatus, outcome.grpcMessage).to.equal(0);
    });
  });

  describe("from processes", () => {
    let bridge: BridgeRuntime;
    let process: RawH2Server;
    let client: grpc.Client;
    /** What the fake process answers, by request key. */
    const answers = new Map<string, (stream: http2.ServerHttp2Stream) => void>();

    before(async () => {
      process = await startRawH2Server((stream) => {
        const chunks: Buffer[] = [];
        stream.on("data", (c: Buffer) => chunks.push(c));
        stream.on("error", () => {});
        stream.on("end", () => {
          // The key is the Op's first field; the tests use distinct one-byte-length keys.
          const body = Buffer.concat(chunks);
          const key = body.subarray(7, 7 + (body[6] as number)).toString();
          answers.get(key)?.(stream);
        });
      });
      bridge = await startBridgeAt(process.port);
      client = counterClient(bridge.grpc.address);
    });
    after(async () => {
      client.close();
      await bridge.stop(1000);
      await process.close();
    });

    it("fails a reply announcing 2 GiB with RESOURCE_EXHAUSTED at once, without allocating it", async () => {
      answers.set("huge", (stream) => {
        stream.respond({ ":status": 200, "content-type": "application/grpc" });
        stream.write(hugePrefix(2 * GiB - 1));
        // Never ends: only the prefix can make the bridge answer.
      });
      const before = memoryInUse();
      const error = await failure(
        unaryCall(client, "Start", { key: "huge" }, {}, { deadline: Date.now() + 20_000 }),
      );
      expect(error.code, error.details).to.equal(Code.RESOURCE_EXHAUSTED);
      expect(reasonOf(error)).to.equal("PROCESS_FAULT");
      expect(memoryInUse() - before).to.be.below(64 * MiB);
    });

    it("fails a gzip bomb from the process with RESOURCE_EXHAUSTED without inflating it", async () => {
      const bomb = gzipBomb(512 * MiB);
      answers.set("bomb", (stream) => {
        stream.respond(
          { ":status": 200, "content-type": "application/grpc", "grpc-encoding": "gzip" },
          { waitForTrailers: true },
        );
        stream.on("wantTrailers", () => stream.sendTrailers({ "grpc-status": "0" }));
        stream.end(grpcFrame(bomb, true));
      });
      const before = memoryInUse();
      const error = await failure(
        unaryCall(client, "Start", { key: "bomb" }, {}, { deadline: Date.now() + 20_000 }),
      );
      expect(error.code, error.details).to.equal(Code.RESOURCE_EXHAUSTED);
      // From the bridge (its ErrorInfo), not the client's own receive limit.
      expect(reasonOf(error)).to.equal("PROCESS_FAULT");
      expect(error.details).to.match(/inflates to more than the limit/);
      expect(memoryInUse() - before).to.be.below(64 * MiB);
    });
  });
});
