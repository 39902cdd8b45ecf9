import { type ChildProcess, spawn } from "node:child_process";
import http from "node:http";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { END_STREAM_FLAG, frameEnvelope, readEnvelopes } from "../../../adapters/http/connect-framing.js";
import { createJsonCodec, type JsonCodec } from "../../../bridge/codec/json-codec.js";
import { loadBridgeSetup } from "../../../bridge/config/check-config.js";
import type { ContractSet } from "../../../bridge/contracts/contract.js";
import { type BridgeRuntime, startBridgeRuntime } from "../../../cli/bridge-runtime.js";
import { LAB_CONFIG } from "../../support/lab-harness.js";

/** A plain Python standard-library handler serving Plain/Echo with JSON: a contract in a few lines. */
const PYTHON_HANDLER = `
import json, sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
class H(BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        if self.path != "/api/test.lab.v1.Plain/Echo":
            self.send_response(404); self.send_header("Content-Length", "0"); self.end_headers(); return
        out = json.dumps({"key": body.get("key", ""), "text": "py:" + body.get("text", ""),
                          "sessionId": self.headers.get("sb-session-id", ""),
                          "deadlineMs": self.headers.get("connect-timeout-ms", "-1")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("x-python", "yes")
        self.end_headers()
        self.wfile.write(out)
    def log_message(self, *args): pass
server = ThreadingHTTPServer(("127.0.0.1", 0), H)
print(server.server_address[1], flush=True)
server.serve_forever()
`;

async function post(address: string, path: string, body: string, headers: Record<string, string> = {}) {
  const response = await fetch(`http://${address}${path}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body,
  });
  return {
    status: response.status,
    headers: response.headers,
    json: (await response.json()) as Record<string, unknown>,
  };
}

describe("HTTP outbound: processes at http:// locations (Connect protocol)", function () {
  this.timeout(60_000);
  let contracts: ContractSet;
  let json: JsonCodec;
  let python: ChildProcess;
  let node: http.Server;
  let bridge: BridgeRuntime;

  before(async () => {
    const setup = loadBridgeSetup({ file: LAB_CONFIG, overrides: { grpc: "127.0.0.1:0", store: "memory" } });
    contracts = setup.contracts;
    json = createJsonCodec(contracts);
    python = spawn("python3", ["-c", PYTHON_HANDLER], { stdio: ["ignore", "pipe", "inherit"] });
    const pythonPort = await new Promise<number>((resolve, reject) => {
      python.stdout?.once("data", (chunk: Buffer) => resolve(Number(chunk.toString().trim())));
      python.once("exit", (code) => reject(new Error(`python exited with ${code}`)));
    });
    // A Node process speaking Connect with proto: Start (unary) and Watch (server streaming).
    node = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (c: Buffer) => chunks.push(c));
      request.on("end", () => {
        const body = Buffer.concat(chunks);
        const sessionId = String(request.headers["sb-session-id"] ?? "");
        if (request.url === "/test.lab.v1.Counter/Start") {
          const op = JSON.parse(json.toJson("test.lab.v1.Op", body)) as { key: string };
          if (op.key === "stall") {
            // The head goes out at once, the body never: the caller's deadline passes mid-body.
            response.writeHead(200, { "content-type": "application/proto" });
            response.flushHeaders();
            return;
          }
          const out = json.toBinary("test.lab.v1.Result", JSON.stringify({ key: op.key, sessionId }));
          response.writeHead(200, { "content-type": "application/proto", "trailer-x-done": "yes" }).end(out);
          return;
        }
        if (request.url === "/test.lab.v1.Counter/Watch") {
          const [envelope] = readEnvelopes(body, 1 << 20);
          const op = JSON.parse(json.toJson("test.lab.v1.Op", envelope?.data ?? Buffer.alloc(0))) as {
            key: string;
            count?: number;
            failCode?: number;
          };
          response.writeHead(200, { "content-type": "application/connect+proto", "x-stream": "open" });
          for (let i = 0; i < (op.count ?? 0); i++) {
            response.write(
              frameEnvelope(
                0,
                json.toBinary("test.lab.v1.Result", JSON.stringify({ key: op.key, text: String(i) })),
              ),
            );
          }
          const end =
            op.failCode === undefined
              ? { metadata: { "x-end": ["fine"] } }
              : { error: { code: "resource_exhausted", message: "too many\n😀" } };
          response.end(frameEnvelope(END_STREAM_FLAG, Buffer.from(JSON.stringify(end))));
          return;
        }
        response.writeHead(503, { "content-type": "text/plain" }).end("down for maintenance");
      });
    });
    await new Promise<void>((resolve) => node.listen(0, "127.0.0.1", resolve));
    const nodePort = (node.address() as AddressInfo).port;
    bridge = await startBridgeRuntime({
      contracts,
      config: {
        ...setup.config,
        listeners: { grpc: "127.0.0.1:0", http: "127.0.0.1:0" },
        processes: [
          {
            name: "py",
            services: ["test.lab.v1.Plain"],
            location: `http://127.0.0.1:${pythonPort}/api?codec=json`,
            envelope: false,
          },
          {
            name: "node",
            services: ["test.lab.v1.Counter", "test.lab.v1.Line"],
            location: `http://127.0.0.1:${nodePort}`,
            envelope: false,
          },
        ],
      },
    });
  });

  after(async () => {
    await bridge?.stop(1000);
    python?.kill("SIGTERM");
    node?.closeAllConnections();
    node?.close();
  });

  it("a plain Python standard-library handler serves a contract with JSON, behind a path prefix", async () => {
    const address = bridge.http?.address as string;
    const answer = await post(address, "/test.lab.v1.Plain/Echo", '{"key":"k","text":"hi"}', {
      "connect-timeout-ms": "15000",
    });
    expect(answer.status).to.equal(200);
    expect(answer.json.text).to.equal("py:hi");
    expect(Number(answer.json.deadlineMs)).to.be.greaterThan(0).and.at.most(15_000);
    expect(answer.headers.get("x-python")).to.equal("yes");
  });

  it("unary proto and server streaming to a Connect process, with the session id, trailers and end-stream errors", async () => {
    const address = bridge.http?.address as string;
    const started = await post(address, "/test.lab.v1.Counter/Start", '{"key":"w1"}');
    expect(started.status).to.equal(200);
    expect(started.json.sessionId).to.equal(started.headers.get("sb-session-id"));
    expect(started.headers.get("trailer-x-done")).to.equal("yes");

    const watch = await fetch(`http://${address}/test.lab.v1.Counter/Watch`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: frameEnvelope(0, Buffer.from('{"key":"w1","count":3}')),
    });
    expect(watch.headers.get("x-stream")).to.equal("open");
    const frames = readEnvelopes(Buffer.from(await watch.arrayBuffer()), 1 << 20);
    expect(frames.slice(0, 3).map((f) => JSON.parse(f.data.toString()).text)).to.deep.equal(["0", "1", "2"]);
    expect(JSON.parse(String(frames[3]?.data))).to.deep.equal({ metadata: { "x-end": ["fine"] } });

    const failing = await fetch(`http://${address}/test.lab.v1.Counter/Watch`, {
      method: "POST",
      headers: { "content-type": "application/connect+json" },
      body: frameEnvelope(0, Buffer.from('{"key":"w1","count":1,"failCode":8}')),
    });
    const last = readEnvelopes(Buffer.from(await failing.arrayBuffer()), 1 << 20).at(-1);
    const error = JSON.parse(String(last?.data)).error as { code: string; message: string };
    expect(error).to.include({ code: "resource_exhausted", message: "too many\n😀" });
  });

  it("a process that sent its head and stalls past the deadline is DEADLINE_EXCEEDED, not unavailable (S15)", async () => {
    const address = bridge.http?.address as string;
    const answer = await post(address, "/test.lab.v1.Counter/Start", '{"key":"stall"}', {
      "connect-timeout-ms": "300",
    });
    expect(answer.json.code).to.equal("deadline_exceeded");
    expect(answer.status).to.equal(504);
  });

  it("a foreign HTTP error without a Connect body maps by gRPC's HTTP-to-code table", async () => {
    const address = bridge.http?.address as string;
    // Line/Begin is not served by the node process: it answers 503 text → UNAVAILABLE.
    const answer = await post(address, "/test.lab.v1.Line/Begin", '{"key":"x"}');
    expect(answer.json.code).to.equal("unavailable");
    expect(answer.status).to.equal(503);
    expect(String(answer.json.message)).to.include("down for maintenance");
  });
});
