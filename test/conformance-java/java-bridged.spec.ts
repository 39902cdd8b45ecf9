import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
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
 * A bridge configuration for the lab contract with the Java service as its process. The
 * bridge's contract check refuses LabService.Ping as it stands in lab.proto (a CONCURRENT
 * service's operation without correlation that is not a starter), so the bridge gets a copy
 * of the contract without Ping; Ping is a sessionless, direct-mode operation anyway.
 */
function writeConfig(dir: string, location: string): string {
  const contract = readFileSync(path.join(repoRoot(), "proto", LAB_PROTO), "utf8");
  const withoutPing = contract.replace(
    /\n[^\n]*\n[^\n]*\n\s*rpc Ping\(ActRequest\) returns \(LabReply\);\n/,
    "\n",
  );
  if (withoutPing === contract) throw new Error("lab.proto changed: Ping not found where expected");
  mkdirSync(path.join(dir, path.dirname(LAB_PROTO)), { recursive: true });
  writeFileSync(path.join(dir, LAB_PROTO), withoutPing);
  const file = path.join(dir, "sessionbridge.yaml");
  writeFileSync(
    file,
    [
      "contracts:",
      `  importPaths: [${JSON.stringify(dir)}, ${JSON.stringify(path.join(repoRoot(), "proto"))}]`,
      `  files: [${LAB_PROTO}]`,
      "processes:",
      "  - name: java-lab",
      "    services:",
      "      - sessionbridge.conformance.v1.LabService",
      "      - sessionbridge.conformance.v1.SequentialLabService",
      "      - sessionbridge.conformance.v1.SingleLabService",
      `    location: grpc://${location}`,
      "listeners:",
      "  grpc: 127.0.0.1:0",
      "store: memory",
      "",
    ].join("\n"),
  );
  return file;
}

/** The Java reference service as a process behind a real bridge (`bridged` mode). */
describe("conformance: Java reference service behind the bridge (gRPC)", function () {
  this.timeout(600_000);
  let lab: JavaLab;
  let runtime: BridgeRuntime;
  let clients: LabClients;
  let dir: string;

  before(async () => {
    buildConformance("conformance/reference/java/build.sh");
    dir = mkdtempSync(path.join(os.tmpdir(), "sb-java-bridged-"));
    lab = await startJavaLab();
    const setup = loadBridgeSetup({ file: writeConfig(dir, lab.addresses.grpc) });
    runtime = await startBridgeRuntime({ config: setup.config, contracts: setup.contracts });
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
});
