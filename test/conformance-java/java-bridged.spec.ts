import assert from "node:assert/strict";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { status as Status } from "@grpc/grpc-js";
import { loadBridgeSetup } from "../../bridge/config/check-config.js";
import { type BridgeRuntime, startBridgeRuntime } from "../../cli/bridge-runtime.js";
import type { LabReply } from "../../sdk/gen/sessionbridge/conformance/v1/lab.js";
import { repoRoot } from "../support/repo-root.js";
import {
  buildConformance,
  type JavaLab,
  type LabClients,
  labClients,
  startJavaLab,
} from "./java-lab-process.js";
import { actOn, fault, open, unary } from "./lab-call.js";

const LAB_PROTO = "sessionbridge/conformance/v1/lab.proto";

/**
 * A bridge configuration for the lab contract (lab.proto as it is, PingLabService
 * included: a service without session options, passed through sessionless) with the Java
 * service as its process at `location`.
 */
function writeConfig(dir: string, location: string): string {
  const file = path.join(dir, "sessionbridge.yaml");
  writeFileSync(
    file,
    [
      "contracts:",
      `  importPaths: [${JSON.stringify(path.join(repoRoot(), "proto"))}]`,
      `  files: [${LAB_PROTO}]`,
      "processes:",
      "  - name: java-lab",
      "    services:",
      "      - sessionbridge.conformance.v1.LabService",
      "      - sessionbridge.conformance.v1.SequentialLabService",
      "      - sessionbridge.conformance.v1.SingleLabService",
      "      - sessionbridge.conformance.v1.PingLabService",
      `    location: ${location}`,
      "listeners:",
      "  grpc: 127.0.0.1:0",
      "store: memory",
      "",
    ].join("\n"),
  );
  return file;
}

/** The Java reference service as a process behind a real bridge (`bridged` mode), reached over each transport it serves. */
for (const outbound of ["grpc", "http"] as const) {
  describe(`conformance: Java reference service behind the bridge (${outbound} outbound)`, function () {
    this.timeout(600_000);
    let lab: JavaLab;
    let runtime: BridgeRuntime;
    let clients: LabClients;
    let dir: string;

    before(async () => {
      buildConformance("conformance/reference/java/build.sh");
      dir = mkdtempSync(path.join(os.tmpdir(), "sb-java-bridged-"));
      lab = await startJavaLab({ transports: [outbound] });
      const location = outbound === "grpc" ? `grpc://${lab.addresses.grpc}` : lab.addresses.http;
      const setup = loadBridgeSetup({ file: writeConfig(dir, location) });
      runtime = await startBridgeRuntime({ config: setup.config, contracts: setup.contracts });
      // Bridge clients: the grpc listener; the process's own transport is `outbound`.
      clients = labClients(runtime.grpc.address);
    });

    after(async () => {
      clients?.close();
      await runtime?.stop(1000);
      await lab?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    this.timeout(30_000);

    it("opens by correlation values, acts on the session with the bridge's facts, finishes it [S2, S4, S12]", async () => {
      const opened = await unary<LabReply>(clients.lab, "open", open("acme", "42", { append: ["opened"] }));
      assert.deepEqual(opened.reply.log, ["opened"]);
      const sessionId = String(opened.headers.get("sb-session-id")[0] ?? "");
      assert.notEqual(sessionId, "");

      const acted = await unary<LabReply>(
        clients.lab,
        "act",
        actOn("acme", "42", { append: ["acted"], observe: true }),
        { "x-custom": "through" },
      );
      assert.deepEqual(acted.reply.log, ["opened", "acted"]);
      // The bridge, not the caller, told the service which session this is (S1, S15).
      assert.equal(acted.reply.observed?.sessionId, sessionId);
      assert.notEqual(acted.reply.observed?.messageId, "");
      assert.equal(acted.reply.observed?.metadata["x-custom"], "through");

      // Another account of the same tenant is another session (S1, S5).
      const other = await unary<LabReply>(clients.lab, "open", open("acme", "43"));
      assert.deepEqual(other.reply.log, []);

      const finished = await unary<LabReply>(
        clients.lab,
        "finish",
        actOn("acme", "42", { append: ["finished"] }),
      );
      assert.deepEqual(finished.reply.log, ["opened", "acted", "finished"]);

      const after = await fault(unary(clients.lab, "act", actOn("acme", "42")));
      assert.equal(after.code, Status.NOT_FOUND);
    });

    it("passes PingLabService.Ping through without a session", async () => {
      const pong = await unary<LabReply>(clients.ping, "ping", actOn("", "", { observe: true, note: "p" }));
      assert.equal(pong.reply.note, "p");
      assert.equal(pong.reply.observed?.sessionId, "");
      assert.equal(pong.reply.observed?.transport, outbound);
      assert.deepEqual(pong.headers.get("sb-session-id"), []);
    });
  });
}
