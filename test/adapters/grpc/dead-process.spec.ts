import { type ChildProcess, spawn } from "node:child_process";
import { once } from "node:events";
import http2 from "node:http2";
import path from "node:path";
import { createInterface } from "node:readline";
import type * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { Code } from "../../../bridge/errors/code.js";
import type { BridgeRuntime } from "../../../cli/bridge-runtime.js";
import { failure, unaryCall } from "../../support/grpc-call.js";
import { reasonOf } from "../../support/lab-harness.js";
import { type RawH2Server, startRawH2Server } from "../../support/passthrough-server.js";
import { repoRoot } from "../../support/repo-root.js";
import { waitFor } from "../../support/wait.js";
import { counterClient, startBridgeAt } from "./raw-h2-client.js";

const SCRIPT = path.join(repoRoot(), "dist/test/adapters/grpc/dying-process.js");

/** The dying process, started; resolves with its port once it listens. */
async function startDying(): Promise<{ child: ChildProcess; port: number; calls: string[] }> {
  const child = spawn(process.execPath, [SCRIPT], { stdio: ["ignore", "pipe", "inherit"] });
  const calls: string[] = [];
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`the process exited early (${code})`)));
    lines.on("line", (line) => {
      const [what, value] = line.split(" ");
      if (what === "port") resolve(Number(value));
      else if (what === "call") calls.push(value as string);
    });
  });
  return { child, port, calls };
}

async function kill(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, "exit");
  child.kill("SIGKILL");
  await exited;
}

/** Reads a server stream until it fails; resolves with the messages seen and the error. */
function watch(
  client: grpc.Client,
  key: string,
  onMessage: () => void,
): Promise<{ messages: number; error: grpc.ServiceError }> {
  return new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (r: object) => grpc.ClientReadableStream<unknown>>).Watch;
    if (fn === undefined) throw new Error("no Watch");
    const call = fn.call(client, { key });
    let messages = 0;
    call.on("data", () => {
      messages += 1;
      onMessage();
    });
    call.on("error", (error: grpc.ServiceError) => resolve({ messages, error }));
    call.on("end", () => reject(new Error("the stream ended without an error")));
  });
}

/**
 * A process that dies mid-call (SIGKILL, its connection gone after the request was sent)
 * makes the call UNAVAILABLE (DESIGN §7, gRPC's status guide), retryable, never INTERNAL.
 */
describe("a process that dies mid-call", () => {
  let dying: Awaited<ReturnType<typeof startDying>>;
  let bridge: BridgeRuntime;
  let client: grpc.Client;

  beforeEach(async () => {
    dying = await startDying();
    bridge = await startBridgeAt(dying.port);
    client = counterClient(bridge.grpc.address);
  });
  afterEach(async () => {
    client.close();
    await kill(dying.child);
    await bridge.stop(1000);
  });

  it("fails a unary call in flight with UNAVAILABLE", async () => {
    const call = failure(unaryCall(client, "Start", { key: "hang-unary" }));
    await waitFor(() => dying.calls.includes("Start"), 10_000, "the call reached the process");
    await kill(dying.child);
    const error = await call;
    expect(error.code, error.details).to.equal(Code.UNAVAILABLE);
    expect(reasonOf(error)).to.equal("PROCESS_UNAVAILABLE");
  });

  it("fails a server stream in flight with UNAVAILABLE after its first message", async () => {
    await unaryCall(client, "Start", { key: "ok-stream" });
    let first = false;
    const outcome = watch(client, "ok-stream", () => {
      first = true;
    });
    await waitFor(() => first, 10_000, "the first message");
    await kill(dying.child);
    const { messages, error } = await outcome;
    expect(messages).to.equal(1);
    expect(error.code, error.details).to.equal(Code.UNAVAILABLE);
  });
});

/** The ways a connection dies under a call, played by a raw HTTP/2 process. */
describe("a process connection that breaks under a call", () => {
  let raw: RawH2Server;
  let bridge: BridgeRuntime;
  let client: grpc.Client;
  let breakIt: (stream: http2.ServerHttp2Stream) => void = () => {};

  before(async () => {
    raw = await startRawH2Server((stream) => {
      stream.on("error", () => {});
      stream.session?.on("error", () => {});
      // Answer headers, so the call is under way, then break the connection.
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.resume();
      setImmediate(() => breakIt(stream));
    });
    bridge = await startBridgeAt(raw.port);
    client = counterClient(bridge.grpc.address);
  });
  after(async () => {
    client.close();
    await bridge.stop(1000);
    await raw.close();
  });

  const ways: [string, (stream: http2.ServerHttp2Stream) => void][] = [
    [
      "its socket is reset (ECONNRESET)",
      (stream) => (stream.session as http2.ServerHttp2Session).socket.resetAndDestroy(),
    ],
    ["GOAWAY, then the connection closes", (stream) => stream.session?.destroy()],
    [
      "RST_STREAM NO_ERROR as the connection goes",
      (stream) => {
        const session = stream.session;
        stream.close(http2.constants.NGHTTP2_NO_ERROR, () => session?.destroy());
      },
    ],
    [
      "GOAWAY with an error code",
      (stream) => stream.session?.goaway(http2.constants.NGHTTP2_INTERNAL_ERROR, stream.id ?? 0),
    ],
  ];
  ways.forEach(([name, how], i) => {
    it(`${name}: UNAVAILABLE`, async () => {
      breakIt = how;
      const error = await failure(
        unaryCall(client, "Start", { key: `break-${i}` }, {}, { deadline: Date.now() + 20_000 }),
      );
      expect(error.code, error.details).to.equal(Code.UNAVAILABLE);
    });
  });
});
