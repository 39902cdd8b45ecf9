import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { expect } from "chai";
import { type BridgeProcess, startBridgeProcess } from "../../support/bridge-process.js";
import { NATS_CLI_BIN, type NatsServerFixture, startNatsServer } from "../../support/nats-server.js";
import { repoRoot } from "../../support/repo-root.js";
import { waitFor } from "../../support/wait.js";

const run = promisify(execFile);

/**
 * `sessionbridge start --nats URL` with the orders example, as a user runs it, and the
 * issue's own check: `nats req sb.examples.orders.v1.Orders.Open … -H
 * Content-Type:application/json` answers with the order and its session.
 */
describe("sessionbridge start --nats: the orders example over NATS", function () {
  this.timeout(60_000);
  let server: NatsServerFixture;
  let dir: string;
  let orders: ChildProcess;
  let bridge: BridgeProcess;

  before(async () => {
    server = await startNatsServer();
    dir = mkdtempSync(path.join(tmpdir(), "sb-nats-start-"));
    orders = spawn(
      process.execPath,
      ["dist/examples/orders/orders-main.js", "127.0.0.1:0", path.join(dir, "o.db")],
      {
        cwd: repoRoot(),
        stdio: ["ignore", "pipe", "ignore"],
      },
    );
    const lines: string[] = [];
    createInterface({ input: orders.stdout as NodeJS.ReadableStream }).on("line", (l) => lines.push(l));
    const ready = (): string | undefined => lines.find((l) => l.includes("orders process ready"));
    await waitFor(() => ready() !== undefined, 15_000, "orders ready");
    const port = (JSON.parse(ready() ?? "{}") as { port: number }).port;
    const config = path.join(dir, "sessionbridge.yaml");
    writeFileSync(
      config,
      [
        "contracts:",
        `  importPaths: [${JSON.stringify(path.join(repoRoot(), "examples/orders/proto"))}]`,
        "  files: [examples/orders/v1/orders.proto]",
        "processes:",
        "  - name: orders",
        "    services: [examples.orders.v1.Orders]",
        `    location: grpc://127.0.0.1:${port}`,
        "store: memory",
      ].join("\n"),
    );
    bridge = await startBridgeProcess(["--config", config, "--grpc", "127.0.0.1:0", "--nats", server.url]);
  });

  after(async () => {
    bridge?.child.kill("SIGTERM");
    if (bridge !== undefined) await bridge.exited;
    orders?.kill("SIGKILL");
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("logs the NATS listener in its ready line and answers `nats req` with JSON", async () => {
    const ready = bridge.lines.map(
      (l) => JSON.parse(l) as { msg?: string; nats?: { url: string; prefix: string } },
    );
    expect(ready.find((l) => l.msg === "sessionbridge ready")?.nats).to.deep.equal({
      url: server.url,
      prefix: "sb",
    });
    const { stdout, stderr } = await run(
      NATS_CLI_BIN,
      [
        "-s",
        server.url,
        "req",
        "sb.examples.orders.v1.Orders.Open",
        '{"orderId":"o1","customer":"ada"}',
        "-H",
        "Content-Type:application/json",
      ],
      { timeout: 30_000 },
    );
    expect(stdout).to.include('"orderId":"o1"');
    expect(stdout).to.include('"customer":"ada"');
    expect(`${stdout}${stderr}`).to.match(/sb-session-id: [A-Za-z0-9_-]{22,}/);
  });

  it("drains on SIGTERM and leaves the services API", async () => {
    bridge.child.kill("SIGTERM");
    expect(await bridge.exited).to.equal(0);
    const listed = await run(NATS_CLI_BIN, ["-s", server.url, "micro", "ls"], { timeout: 30_000 }).then(
      ({ stdout }) => stdout,
      (error: { stderr?: string }) => error.stderr ?? "",
    );
    expect(listed).to.include("no service instances found");
  });
});
