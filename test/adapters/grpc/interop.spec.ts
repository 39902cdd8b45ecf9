import { type ChildProcess, execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { expect } from "chai";
import { loadBridgeSetup } from "../../../bridge/config/check-config.js";
import { type BridgeRuntime, startBridgeRuntime } from "../../../cli/bridge-runtime.js";
import { repoRoot } from "../../support/repo-root.js";

const run = promisify(execFile);
const BIN = path.join(repoRoot(), ".tools/bin");

/**
 * The standard gRPC interop cases (grpc/grpc doc/interop-test-descriptions.md) that work
 * through a proxy, run by grpc-go's interop client against grpc-go's TestService behind
 * the bridge; the four compression cases, which grpc-go's interop client lacks, by
 * test/go/interop/compression on grpc-go (it reads from grpc-go's stats whether each
 * message travelled compressed, so they prove compression passes through unchanged). The contract is the interop .proto, printed at test time from the
 * descriptors compiled into grpc-go (scripts/install-tools.sh builds the tools). The
 * TestService has no sessionbridge options: its calls pass through sessionless.
 */
describe("gRPC interop cases through the bridge (grpc-go client and server)", function () {
  this.timeout(60_000);
  let dir: string;
  let server: ChildProcess;
  let bridge: BridgeRuntime;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "sb-interop-"));
    await run(path.join(BIN, "interop-protodump"), [path.join(dir, "proto")]);
    server = spawn(path.join(BIN, "interop-compression"), ["server"], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    const port = await new Promise<number>((resolve, reject) => {
      server.once("exit", (code) => reject(new Error(`the interop server exited (${code})`)));
      createInterface({ input: server.stdout as NodeJS.ReadableStream }).on("line", (line) => {
        const [what, value] = line.split(" ");
        if (what === "port") resolve(Number(value));
      });
    });
    // The process serves every service of the file; those grpc-go does not implement
    // answer UNIMPLEMENTED from the process itself.
    const source = readFileSync(path.join(dir, "proto/grpc/testing/test.proto"), "utf8");
    const services = [...source.matchAll(/^service (\w+)/gm)].map((m) => `grpc.testing.${m[1]}`);
    const file = path.join(dir, "sessionbridge.yaml");
    writeFileSync(
      file,
      [
        "contracts:",
        `  importPaths: [${JSON.stringify(path.join(dir, "proto"))}]`,
        "  files: [grpc/testing/test.proto]",
        "processes:",
        "  - name: interop",
        `    services: [${services.join(", ")}]`,
        `    location: grpc://127.0.0.1:${port}`,
      ].join("\n"),
    );
    const setup = loadBridgeSetup({ file, overrides: { grpc: "127.0.0.1:0", store: "memory" } });
    bridge = await startBridgeRuntime(setup);
  });
  after(async () => {
    await bridge?.stop(1000);
    if (server !== undefined && server.exitCode === null) {
      const exited = once(server, "exit");
      server.kill("SIGKILL");
      await exited;
    }
    rmSync(dir, { recursive: true, force: true });
  });

  const cases = [
    "empty_unary",
    "large_unary",
    "client_streaming",
    "server_streaming",
    "ping_pong",
    "empty_stream",
    "cancel_after_begin",
    "cancel_after_first_response",
    "timeout_on_sleeping_server",
    "custom_metadata",
    "status_code_and_message",
    "special_status_message",
    "unimplemented_method",
    "unimplemented_service",
  ];
  const compressionCases = [
    "client_compressed_unary",
    "server_compressed_unary",
    "client_compressed_streaming",
    "server_compressed_streaming",
  ];

  async function runClient(testCase: string, command: string, args: string[]): Promise<void> {
    try {
      await run(path.join(BIN, command), args, { timeout: 50_000 });
    } catch (error) {
      const { stderr, stdout } = error as { stderr?: string; stdout?: string };
      expect.fail(`${testCase} failed:\n${stdout ?? ""}${stderr ?? ""}`);
    }
  }

  for (const testCase of cases) {
    it(testCase, () =>
      runClient(testCase, "interop-client", [
        "--server_host=127.0.0.1",
        `--server_port=${bridge.grpc.port}`,
        `--test_case=${testCase}`,
      ]),
    );
  }
  for (const testCase of compressionCases) {
    it(testCase, () =>
      runClient(testCase, "interop-compression", [
        "client",
        `--server=127.0.0.1:${bridge.grpc.port}`,
        `--test_case=${testCase}`,
      ]),
    );
  }
});
