import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { createPayloadDecoder } from "../../cli/payload-decoder.js";
import { createReflectionClient } from "../../cli/reflection-client.js";
import { EnvelopeKind } from "../../sdk/gen/sessionbridge/v1/envelope.js";
import { type BridgeProcess, CLI, startLabBridgeProcess } from "../support/bridge-process.js";
import { failure, unaryCall } from "../support/grpc-call.js";
import {
  type LabProcess,
  type LabResult,
  labCounterClient,
  startLabProcess,
} from "../support/lab-process.js";
import { fixturePath, repoRoot } from "../support/repo-root.js";
import { waitFor } from "../support/wait.js";

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
        /^valid: .*examples\/orders\/sessionbridge\.yaml: 3 service\(s\), 13 operation\(s\), 3 process\(es\)/,
      );
    });

    it("lists every configuration problem with file, line and column, and exits 2", async () => {
      const run = await cli("validate", "--config", fixturePath("config/errors.yaml"));
      expect(run.code).to.equal(2);
      expect(run.stderr).to.match(/^invalid configuration \(26 problems\):/);
      expect(run.stderr).to.include(
        "errors.yaml:8:15: processes[0].location: unsupported location scheme ws",
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
      bridge = await startLabBridgeProcess(dir, lab.port);
      client = labCounterClient(bridge.address);
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
      expect(run.stderr).to.equal(
        "error: cannot reach the bridge at 127.0.0.1:1: connection refused (is it running? --bridge ADDR)\n",
      );
    });

    it("--json prints enum names, RFC 3339 times and payloads decoded as protobuf JSON", async () => {
      const RFC3339 = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{3}|\.\d{6}|\.\d{9})?Z$/;
      const own = (await unaryCall<LabResult>(client, "Start", { key: "cli-json" })).response.session_id;
      await unaryCall(client, "Do", { key: "cli-json", text: "hello" });
      const shown = await cli("sessions", "show", own, "--json", "--bridge", bridge.address);
      const session = JSON.parse(shown.stdout) as Record<string, unknown>;
      expect(session.state).to.equal("ACTIVE");
      expect(session.createdAt).to.match(RFC3339);
      expect(session.lastActiveAt).to.match(RFC3339);
      expect(session.correlation).to.deep.equal({ key: "cli-json" });

      const history = await cli("sessions", "history", own, "--json", "--bridge", bridge.address);
      expect(history.code).to.equal(0);
      expect(history.stdout).not.to.include('"type":"Buffer"');
      const entries = history.stdout
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as { index: number; envelope: Record<string, unknown> });
      expect(entries.map((e) => e.envelope.kind)).to.deep.equal([
        "EVENT",
        "REQUEST",
        "RESPONSE",
        "REQUEST",
        "RESPONSE",
      ]);
      for (const e of entries) expect(e.envelope.time).to.match(RFC3339);
      // Requests by the method's request type (test.lab.v1.Op), responses by its response type (Result).
      expect(entries[3]?.envelope.payload).to.deep.equal({ key: "cli-json", text: "hello" });
      const result = entries[4]?.envelope.payload as Record<string, unknown>;
      expect(result.key).to.equal("cli-json");
      expect(result.text).to.equal("hello");
      expect(result.sessionId).to.equal(own);
      expect(entries[4]?.envelope.inReplyTo).to.equal(entries[3]?.envelope.messageId);
    });

    it("--json falls back to base64, saying why, for a payload without a known type", async () => {
      const channel = new grpc.Client(bridge.address, grpc.credentials.createInsecure());
      try {
        const decoder = createPayloadDecoder(createReflectionClient(channel, 10_000));
        const bytes = Uint8Array.of(10, 3, 97, 98, 99);
        const unknown = await decoder.decode(
          "/no.such.v1.Service/Do",
          EnvelopeKind.ENVELOPE_KIND_REQUEST,
          bytes,
          "proto",
        );
        expect(unknown).to.have.property("payloadBase64", "CgNhYmM=");
        expect(unknown)
          .to.have.property("payloadUndecoded")
          .that.matches(/^unknown type: .*no\.such\.v1\.Service/);
        const event = await decoder.decode(
          "/test.lab.v1.Counter/Do",
          EnvelopeKind.ENVELOPE_KIND_EVENT,
          bytes,
          "proto",
        );
        expect(event).to.deep.equal({
          payloadBase64: "CgNhYmM=",
          payloadUndecoded: "no message type for a EVENT entry",
        });
        const known = await decoder.decode(
          "/test.lab.v1.Counter/Do",
          EnvelopeKind.ENVELOPE_KIND_REQUEST,
          bytes,
          "proto",
        );
        expect(known).to.deep.equal({ payload: { key: "abc" } });
      } finally {
        channel.close();
      }
    });

    it("escapes control characters from clients in tables, details and JSON lines", async () => {
      const key = "cli-\u001b[2J\u0007\u009b\u202eevil";
      const evil = (await unaryCall<LabResult>(client, "Start", { key })).response.session_id;
      // biome-ignore lint/suspicious/noControlCharactersInRegex: the characters that must not reach a terminal
      const raw = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f\u202e]/;
      const table = await cli("sessions", "list", "--bridge", bridge.address);
      expect(table.stdout).not.to.match(raw);
      expect(table.stdout).to.include("key=cli-\\x1b[2J\\x07\\x9b\\u202eevil");
      const shown = await cli("sessions", "show", evil, "--bridge", bridge.address);
      expect(shown.stdout).not.to.match(raw);
      expect(shown.stdout).to.include("key=cli-\\x1b[2J");
      const history = await cli("sessions", "history", evil, "--bridge", bridge.address);
      expect(history.stdout).not.to.match(raw);
      const json = await cli("sessions", "show", evil, "--json", "--bridge", bridge.address);
      expect(json.stdout).not.to.match(raw);
      // Still the same JSON: the value comes back exactly.
      expect((JSON.parse(json.stdout) as { correlation: { key: string } }).correlation.key).to.equal(key);
      const lines = await cli("sessions", "history", evil, "--json", "--bridge", bridge.address);
      expect(lines.stdout).not.to.match(raw);
      expect(lines.stdout).to.include("\\u202eevil");
    });

    it("lists every page by default with one header; --page-size gives one page and says how to go on", async () => {
      const keys = Array.from({ length: 60 }, (_, i) => `cli-page-${i}`);
      await Promise.all(keys.map((key) => unaryCall(client, "Start", { key })));
      const all = await cli(
        "sessions",
        "list",
        "--service",
        "test.lab.v1.Counter",
        "--bridge",
        bridge.address,
      );
      expect(all.code).to.equal(0);
      expect(all.stderr).to.equal("");
      const rows = all.stdout.trim().split("\n");
      expect(rows.filter((r) => r.startsWith("ID ")).length).to.equal(1);
      for (const key of keys) expect(rows.some((r) => r.includes(`key=${key}`))).to.equal(true, key);

      const paged = await cli("sessions", "list", "--page-size", "7", "--all", "--bridge", bridge.address);
      const pagedRows = paged.stdout.trim().split("\n");
      expect(pagedRows.filter((r) => r.startsWith("ID ")).length).to.equal(1);
      expect(pagedRows.length).to.equal(rows.length);

      const one = await cli("sessions", "list", "--page-size", "2", "--json", "--bridge", bridge.address);
      const firstIds = one.stdout
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { id: string }).id);
      expect(firstIds).to.have.length(2);
      const token = /--page-token (\S+)/.exec(one.stderr)?.[1];
      expect(token, one.stderr).to.be.a("string");
      const next = await cli(
        "sessions",
        "list",
        "--page-size",
        "2",
        "--page-token",
        token ?? "",
        "--json",
        "--bridge",
        bridge.address,
      );
      const nextIds = next.stdout
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as { id: string }).id);
      expect(nextIds).to.have.length(2);
      expect(nextIds.filter((id) => firstIds.includes(id))).to.deep.equal([]);
    });

    it("ends quietly with exit 0 when its reader goes away (| head)", async () => {
      await unaryCall(client, "Start", { key: "cli-pipe" });
      // More than a pipe holds, so the writer is still writing when head is gone.
      const reply = await unaryCall<LabResult>(client, "Do", { key: "cli-pipe", text: "x".repeat(300_000) });
      const id = reply.response.session_id;
      for (const args of [
        `sessions history ${id} --json --bridge ${bridge.address}`,
        `sessions list --json --bridge ${bridge.address}`,
      ]) {
        const run = await exec(
          "bash",
          [
            "-c",
            `"$NODE" "$CLI" ${args} 2>"$ERR" | head -c 10 >/dev/null; echo "\${PIPESTATUS[0]}"; cat "$ERR"`,
          ],
          { env: { ...process.env, NODE: process.execPath, CLI, ERR: path.join(dir, "stderr.txt") } },
        );
        expect(run.stdout).to.equal("0\n");
      }
    });

    it("takes an id that starts with '-' after '--', and says so when it is given as an option", async () => {
      const run = await cli("sessions", "show", "--bridge", bridge.address, "--", "-abc");
      expect(run.code).to.equal(1);
      expect(run.stderr).to.equal("error: NOT_FOUND (SESSION_NOT_FOUND): session -abc not found\n");
      const misread = await cli("sessions", "show", "-abc", "--bridge", bridge.address);
      expect(misread.code).to.equal(2);
      expect(misread.stderr).to.include('goes after "--": sessions show -- -abc');
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

  describe("shutdown signals", () => {
    let dir: string;
    let lab: LabProcess;
    let bridge: BridgeProcess | undefined;
    let client: grpc.Client | undefined;

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), "sb-cli-stop-"));
      lab = await startLabProcess();
    });

    afterEach(() => {
      client?.close();
      if (bridge?.child.exitCode === null && bridge.child.signalCode === null) bridge.child.kill("SIGKILL");
    });

    after(async () => {
      await lab?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    /** A bridge with one call in flight at the lab process: resolves once the process has it. */
    async function bridgeWithSlowCall(name: string, delayMs: number) {
      bridge = await startLabBridgeProcess(dir, lab.port, {
        storeName: name,
        extraArgs: ["--drain-ms", "60000"],
      });
      client = labCounterClient(bridge.address);
      await unaryCall(client, "Start", { key: name });
      const slow = unaryCall<LabResult>(client, "Do", { key: name, text: "slow", delay_ms: delayMs });
      // Observed so a forced exit's failure is not an unhandled rejection before it is awaited.
      slow.catch(() => {});
      await waitFor(() => lab.deliveries.some((d) => d.key === name && d.text === "slow"), 10_000);
      return { bridge, slow };
    }

    const messages = (lines: readonly string[]) => lines.map((l) => (JSON.parse(l) as { msg: string }).msg);
    const IGNORED = "drain in progress, signal ignored: a third signal forces the exit";

    /**
     * Sends SIGINT and waits until the bridge has logged `line`: signals of one kind do not
     * queue, so two sent back to back may arrive as one.
     */
    async function interrupt(b: BridgeProcess, line: string): Promise<void> {
      const seen = messages(b.lines).filter((m) => m === line).length;
      b.child.kill("SIGINT");
      await waitFor(() => messages(b.lines).filter((m) => m === line).length > seen, 10_000, line);
    }

    it("ignores a second SIGINT during the drain: the call in flight completes, exit 0", async () => {
      const { bridge, slow } = await bridgeWithSlowCall("twice", 2000);
      // Ctrl-C reaches the whole process group, and launchers forward it: two signals.
      await interrupt(bridge, "draining");
      await interrupt(bridge, IGNORED);
      const out = await slow;
      expect(out.response.key).to.equal("twice");
      expect(out.response.text).to.equal("slow");
      expect(await bridge.exited).to.equal(0);
      const logs = messages(bridge.lines);
      expect(logs).to.include.members(["draining", IGNORED, "stopped"]);
      expect(logs).not.to.include("forced exit during drain");
    });

    it("forces the exit on a third signal and logs what it abandons, exit 1", async () => {
      const { bridge, slow } = await bridgeWithSlowCall("thrice", 8000);
      await interrupt(bridge, "draining");
      await interrupt(bridge, IGNORED);
      bridge.child.kill("SIGINT");
      expect(await bridge.exited).to.equal(1);
      const failed = await failure(slow);
      expect(failed.code).to.equal(grpc.status.UNAVAILABLE);
      const forced = bridge.lines
        .map(
          (l) => JSON.parse(l) as { msg: string; abandoned?: string; kept?: string; inflightCalls?: number },
        )
        .find((l) => l.msg === "forced exit during drain");
      // The slow call is still in flight: the log counts what is abandoned.
      expect(forced?.inflightCalls).to.equal(1);
      expect(forced?.abandoned).to.include("calls in flight");
      expect(forced?.kept).to.include("one-way messages not yet delivered stay journaled");
      expect(messages(bridge.lines)).not.to.include("stopped");
    });
  });

  it("exits 2 from start with an invalid configuration, before listening", async () => {
    const run = await cli("start", "--config", fixturePath("config/errors.yaml"));
    expect(run.code).to.equal(2);
    expect(run.stderr).to.match(/^invalid configuration/);
  });
});
