import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync } from "node:fs";
import type http2 from "node:http2";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { expect } from "chai";
import { MessageDecoder } from "../../../adapters/grpc/grpc-framing.js";
import type { BridgeRuntime } from "../../../cli/bridge-runtime.js";
import { unaryCall } from "../../support/grpc-call.js";
import { grpcFrame } from "../../support/passthrough-server.js";
import { repoRoot } from "../../support/repo-root.js";
import { waitFor } from "../../support/wait.js";
import { connectRaw, counterClient, encodeOp, memoryInUse, startBridgeAt } from "./raw-h2-client.js";

const SCRIPT = path.join(repoRoot(), "dist/test/adapters/grpc/flood-process.js");
const MiB = 1024 ** 2;
const COUNT = 20_000;
const TEXT_BYTES = 16 * 1024;

/**
 * A server-streaming caller that reads nothing while the process keeps producing: HTTP/2
 * flow control and backpressure hold the process back end to end (inbound write waits
 * for drain, the outbound queue pauses the process's stream), so the bridge never
 * buffers the stream. 20 000 × 16 KiB is 320 MiB the bridge must not hold.
 */
describe("a slow reader of a server stream", function () {
  // 320 MiB through the bridge and its SQLite journal: seconds alone, more on a busy machine.
  this.timeout(240_000);
  let child: ChildProcess;
  let sent = 0;
  let bridge: BridgeRuntime;
  let dir: string;

  before(async () => {
    child = spawn(process.execPath, [SCRIPT], { stdio: ["ignore", "pipe", "inherit"] });
    const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
    const port = await new Promise<number>((resolve, reject) => {
      child.once("exit", (code) => reject(new Error(`the process exited early (${code})`)));
      lines.on("line", (line) => {
        const [what, value] = line.split(" ");
        if (what === "port") resolve(Number(value));
        else if (what === "sent") sent = Number(value);
      });
    });
    // SQLite: the journal keeps the stream's messages on disk, not in this process.
    dir = mkdtempSync(path.join(os.tmpdir(), "sb-slow-"));
    bridge = await startBridgeAt(port, `sqlite:${path.join(dir, "sessions.db")}`);
  });
  after(async () => {
    await bridge.stop(1000);
    const exited = once(child, "exit");
    child.kill("SIGKILL");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  });

  it("holds the process back instead of buffering, then delivers every message", async () => {
    const client = counterClient(bridge.grpc.address);
    await unaryCall(client, "Start", { key: "slow" });
    client.close();

    const session = await connectRaw(bridge.grpc.address);
    const before = memoryInUse();
    const stream: http2.ClientHttp2Stream = session.request({
      ":method": "POST",
      ":path": "/test.lab.v1.Counter/Watch",
      "content-type": "application/grpc",
      te: "trailers",
    });
    stream.on("error", () => {});
    stream.pause();
    stream.end(grpcFrame(encodeOp({ key: "slow", text: "x".repeat(TEXT_BYTES), count: COUNT })));

    // Not reading: the process gets as far as flow control lets it, then stalls.
    let last = -1;
    let still = 0;
    await waitFor(
      () => {
        still = sent === last ? still + 1 : 0;
        last = sent;
        return sent > 0 && still >= 10;
      },
      60_000,
      "the process stalled",
    );
    const held = memoryInUse() - before;
    expect(sent, "messages the process got out while nobody read").to.be.below(COUNT / 4);
    expect(held, "bridge memory while the reader lags").to.be.below(32 * MiB);

    // Reading again: everything arrives, in order, and the call ends OK.
    let received = 0;
    let peak = 0;
    const decoder = new MessageDecoder(4 * MiB);
    let trailers: http2.IncomingHttpHeaders = {};
    stream.on("trailers", (t) => {
      trailers = t;
    });
    stream.on("data", (chunk: Buffer) => {
      decoder.push(chunk, () => {
        received += 1;
        if (received % 2000 === 0) peak = Math.max(peak, memoryInUse() - before);
      });
    });
    stream.resume();
    await once(stream, "close");
    session.close();
    expect(received).to.equal(COUNT);
    expect(trailers["grpc-status"]).to.equal("0");
    expect(peak, "bridge memory while the stream flows").to.be.below(96 * MiB);
  });
});
