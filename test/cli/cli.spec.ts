import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { type BridgeProcess, CLI, startBridgeProcess } from "../support/bridge-process.js";
import { unaryCall } from "../support/grpc-call.js";
import { writeLabConfig } from "../support/lab-config.js";
import { type LabProcess, type LabResult, loadLabPackage, startLabProcess } from "../support/lab-process.js";
import { fixturePath, repoRoot } from "../support/repo-root.js";

const exec = promisify(execFile);

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function cli(...args: string[]): Promise<Run> {
  try {
    const { stdout, stderr } = await exec(process.execPath, [CLI, ...args], { cwd: repoRoot() });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

describe("sessionbridge command line", function () {
  this.timeout(30_000);

  describe("help and usage", () => {
    for (const command of [
      [],
      ["start"],
      ["validate"],
      ["sessions"],
      ["sessions", "list"],
      ["sessions", "show"],
      ["sessions", "history"],
      ["sessions", "close"],
    ]) {
      it(`--help works for '${["sessionbridge", ...command].join(" ")}' and exits 0`, async () => {
        const run = await cli(...command, "--help");
        expect(run.code).to.equal(0);
        expect(run.stdout).to.include("Usage: sessionbridge");
      });
    }

    it("rejects unknown commands and bad options with exit code 2", async () => {
      expect((await cli("frobnicate")).code).to.equal(2);
      const bad = await cli("sessions", "list", "--page-size", "zero");
      expect(bad.code).to.equal(2);
      expect(bad.stderr).to.include("--page-size must be an integer");
      expect((await cli("sessions", "show")).code).to.equal(2);
    });
  });

  describe("validate", () => {
    it("accepts the example configuration", async () => {
      const run = await cli("validate", "--config", "examples/orders/sessionbridge.yaml");
      expect(run.code).to.equal(0);
      expect(run.stdout).to.match(
        /^valid: .*examples\/orders\/sessionbridge\.yaml: 1 service\(s\), 5 operation\(s\), 1 process\(es\)/,
      );
    });

    it("lists every configuration problem with file, line and column, and exits 2", async () => {
      const run = await cli("validate", "--config", fixturePath("config/errors.yaml"));
      expect(run.code).to.equal(2);
      expect(run.stderr).to.match(/^invalid configuration \(26 problems\):/);
      expect(run.stderr).to.include(
        "errors.yaml:8:15: processes[0].location: unsupported location scheme http",
      );
      expect(run.stderr).to.include("errors.yaml:4:3: contracts.file: unknown key, did you mean files?");
    });

    it("lists every contract problem with file, service and method, and exits 2", async () => {
      const run = await cli("validate", "--config", fixturePath("config/setup-bad-contract.yaml"));
      expect(run.code).to.equal(2);
      expect(run.stderr).to.include(
        "invalid/flags.proto:16:3: fixtures.flags.v1.Flags.NoCorrelation: the operation is not a starter and has no correlation",
      );
      expect(run.stderr).to.include("one_way applies to unary methods only");
    });

    it("names a missing file", async () => {
      const run = await cli("validate", "--config", "no/such/file.yaml");
      expect(run.code).to.equal(2);
      expect(run.stderr).to.include("no/such/file.yaml: cannot read the config file: file not found");
    });
  });

  describe("start and sessions against a running bridge", () => {
    let dir: string;
    let lab: LabProcess;
    let bridge: BridgeProcess;
    let client: grpc.Client;
    let sessionId: string;

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), "sb-cli-"));
      lab = await startLabProcess();
      const config = writeLabConfig(dir, lab.port);
      bridge = await startBridgeProcess([
        "--config",
        config,
        "--grpc",
        "127.0.0.1:0",
        "--store",
        `sqlite:${path.join(dir, "s.db")}`,
      ]);
      const pkg = loadLabPackage() as unknown as {
        test: { lab: { v1: { Counter: grpc.ServiceClientConstructor } } };
      };
      client = new pkg.test.lab.v1.Counter(bridge.address, grpc.credentials.createInsecure());
      sessionId = (await unaryCall<LabResult>(client, "Start", { key: "cli-a" })).response.session_id;
      await unaryCall(client, "Do", { key: "cli-a", text: "hello" });
    });

    after(async () => {
      client?.close();
      bridge?.child.kill("SIGKILL");
      await lab?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("logs structured JSON lines, the ready line with address and store", () => {
      const ready = bridge.lines
        .map((l) => JSON.parse(l) as Record<string, unknown>)
        .find((l) => l.msg === "sessionbridge ready");
      expect(ready?.grpc).to.equal(bridge.address);
      expect(ready?.store).to.equal(`sqlite:${path.join(dir, "s.db")}`);
    });

    it("sessions list shows the session as a table, and as JSON lines with --json", async () => {
      const table = await cli("sessions", "list", "--bridge", bridge.address);
      expect(table.code).to.equal(0);
      expect(table.stdout.split("\n")[0]).to.match(
        /^ID\s+SERVICE\s+STATE\s+CORRELATION\s+CREATED\s+LAST ACTIVE$/,
      );
      expect(table.stdout).to.match(
        new RegExp(`${sessionId}\\s+test\\.lab\\.v1\\.Counter\\s+active\\s+key=cli-a`),
      );
      const json = await cli("sessions", "list", "--bridge", bridge.address, "--json", "--state", "active");
      const sessions = json.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { id: string });
      expect(sessions.map((s) => s.id)).to.include(sessionId);
      const bad = await cli("sessions", "list", "--bridge", bridge.address, "--state", "sleeping");
      expect(bad.code).to.equal(2);
    });

    it("sessions show and history describe one session", async () => {
      const shown = await cli("sessions", "show", sessionId, "--bridge", bridge.address);
      expect(shown.code).to.equal(0);
      expect(shown.stdout).to.match(/state\s+active/);
      expect(shown.stdout).to.match(/journal entries\s+5/);
      const history = await cli("sessions", "history", sessionId, "--bridge", bridge.address);
      const lines = history.stdout.trim().split("\n");
      expect(lines).to.have.length(5);
      expect(lines[0]).to.match(/^#1 \S+ EVENT +\/test\.lab\.v1\.Counter\/Start .*event=session\.started/);
      expect(lines[3]).to.match(/^#4 \S+ REQUEST +\/test\.lab\.v1\.Counter\/Do msg=\S+ \d+B$/);
      const from = await cli(
        "sessions",
        "history",
        sessionId,
        "--from",
        "4",
        "--json",
        "--bridge",
        bridge.address,
      );
      expect(
        from.stdout
          .trim()
          .split("\n")
          .map((l) => (JSON.parse(l) as { index: number }).index),
      ).to.deep.equal([4, 5]);
    });

    it("sessions history --follow streams until the session is closed", async () => {
      const follow = cli("sessions", "history", sessionId, "--follow", "--bridge", bridge.address);
      await new Promise((r) => setTimeout(r, 500));
      await unaryCall(client, "Do", { key: "cli-a", text: "live" });
      const closed = await cli("sessions", "close", sessionId, "--bridge", bridge.address);
      expect(closed.code).to.equal(0);
      expect(closed.stdout).to.match(/state\s+closed/);
      expect(closed.stdout).to.match(/end reason\s+closed/);
      const run = await follow;
      expect(run.code).to.equal(0);
      const lines = run.stdout.trim().split("\n");
      expect(lines.at(-1)).to.match(/event=session\.ended state=closed reason=closed/);
      expect(lines.some((l) => l.includes("REQUEST") && l.includes("/Do"))).to.equal(true);
      // Closing again is idempotent.
      expect((await cli("sessions", "close", sessionId, "--bridge", bridge.address)).code).to.equal(0);
    });

    it("reports a session it cannot find with its code and reason, exit 1", async () => {
      const run = await cli("sessions", "show", "AAAAAAAAAAAAAAAAAAAAAA", "--bridge", bridge.address);
      expect(run.code).to.equal(1);
      expect(run.stderr).to.include(
        "error: NOT_FOUND (SESSION_NOT_FOUND): session AAAAAAAAAAAAAAAAAAAAAA not found",
      );
    });

    it("says so when no bridge is listening, exit 1", async () => {
      const run = await cli("sessions", "list", "--bridge", "127.0.0.1:1");
      expect(run.code).to.equal(1);
      expect(run.stderr).to.include("error: cannot reach the bridge at 127.0.0.1:1");
    });

    it("drains on SIGTERM: a call in flight finishes, then the process exits 0", async () => {
      await unaryCall(client, "Start", { key: "cli-drain" });
      const slow = unaryCall<LabResult>(client, "Do", { key: "cli-drain", delay_ms: 500 });
      await new Promise((r) => setTimeout(r, 100));
      bridge.child.kill("SIGTERM");
      const out = await slow;
      expect(out.response.key).to.equal("cli-drain");
      expect(await bridge.exited).to.equal(0);
      const logs = bridge.lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
      expect(logs).to.include.members(["draining", "stopped"]);
    });
  });

  it("exits 2 from start with an invalid configuration, before listening", async () => {
    const run = await cli("start", "--config", fixturePath("config/errors.yaml"));
    expect(run.code).to.equal(2);
    expect(run.stderr).to.match(/^invalid configuration/);
  });
});
