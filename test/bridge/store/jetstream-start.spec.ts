import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { expect } from "chai";
import { createJetStreamStore } from "../../../bridge/store/jetstream-store.js";
import { type BridgeProcess, startBridgeProcess } from "../../support/bridge-process.js";
import { NATS_CLI_BIN, type NatsServerFixture, startNatsServer } from "../../support/nats-server.js";
import { repoRoot } from "../../support/repo-root.js";
import { waitFor } from "../../support/wait.js";

const run = promisify(execFile);

/**
 * `sessionbridge start --nats URL --store jetstream:PREFIX` with the orders example: the
 * bridge keeps its sessions in JetStream on the listener's connection, and what it
 * answered is there after it stops.
 */
describe("sessionbridge start --store jetstream: the orders example's sessions in JetStream", function () {
  this.timeout(60_000);
  let server: NatsServerFixture;
  let dir: string;
  let orders: ChildProcess;
  let bridge: BridgeProcess;

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    dir = mkdtempSync(path.join(tmpdir(), "sb-js-start-"));
    orders = spawn(
      process.execPath,
      ["dist/examples/orders/orders-main.js", "127.0.0.1:0", path.join(dir, "o.db")],
      { cwd: repoRoot(), stdio: ["ignore", "pipe", "ignore"] },
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
      ].join("\n"),
    );
    bridge = await startBridgeProcess([
      "--config",
      config,
      "--grpc",
      "127.0.0.1:0",
      "--nats",
      server.url,
      "--store",
      "jetstream:e2e",
    ]);
  });

  after(async () => {
    if (bridge !== undefined && bridge.child.exitCode === null) bridge.child.kill("SIGKILL");
    if (bridge !== undefined) await bridge.exited;
    orders?.kill("SIGKILL");
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it("names the store in its ready line, journals a call in JetStream, and keeps it after it stops", async () => {
    const ready = bridge.lines
      .map((l) => JSON.parse(l) as { msg?: string; store?: string })
      .find((l) => l.msg === "sessionbridge ready");
    expect(ready?.store).to.equal("jetstream:e2e (R1)");

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
    const sessionId = /sb-session-id: ([A-Za-z0-9_-]{22,})/.exec(`${stdout}${stderr}`)?.[1];
    expect(sessionId, "session id in the reply headers").to.be.a("string");

    bridge.child.kill("SIGTERM");
    expect(await bridge.exited).to.equal(0);

    const store = await createJetStreamStore({ servers: server.url, prefix: "e2e" });
    try {
      const session = await store.getSession(sessionId ?? "");
      expect(session?.service).to.equal("examples.orders.v1.Orders");
      expect(session?.state).to.equal("active");
      const journal = await store.readJournal(sessionId ?? "", 1, 100);
      expect(journal.length, "request and response journaled").to.be.at.least(2);
      expect(journal.length).to.equal(session?.journalLength);
    } finally {
      await store.close();
    }
  });
});
