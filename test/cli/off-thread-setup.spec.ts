import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { expect } from "chai";
import { loadBridgeSetup } from "../../bridge/config/check-config.js";
import { ConfigError } from "../../bridge/config/config-error.js";
import type { LoadConfigOptions } from "../../bridge/config/load-config.js";
import { ContractError } from "../../bridge/contracts/contract-error.js";
import { loadBridgeSetupOffThread } from "../../cli/off-thread-setup.js";
import { fixturePath, repoRoot } from "../support/repo-root.js";

const exec = promisify(execFile);
const DIR = fixturePath("config");

async function outcome(load: () => unknown): Promise<unknown> {
  try {
    return await load();
  } catch (error) {
    return error;
  }
}

/** What a caller can see of a setup or an error: the same for both loaders. */
function visible(result: unknown): unknown {
  if (result instanceof ConfigError || result instanceof ContractError) {
    return { error: result.constructor.name, message: result.message };
  }
  const setup = result as Awaited<ReturnType<typeof loadBridgeSetupOffThread>>;
  return {
    config: setup.config,
    services: [...setup.contracts.services.keys()],
    operations: [...setup.contracts.operations.keys()],
    unserved: setup.unserved.map((s) => s.name),
  };
}

describe("loadBridgeSetupOffThread", function () {
  this.timeout(30_000);

  const cases: [string, LoadConfigOptions][] = [
    ["a configuration and contracts that fit", { file: "setup-ok.yaml", cwd: DIR }],
    ["a subset of the services", { file: "setup-subset.yaml", cwd: DIR }],
    [
      "command-line overrides",
      { file: "setup-ok.yaml", cwd: DIR, overrides: { grpc: "127.0.0.1:0", store: "memory" } },
    ],
    ["the embedded defaults", { cwd: fixturePath("contracts") }],
    ["problems in the file, with line and column", { file: "errors.yaml", cwd: DIR }],
    ["services and processes that do not fit", { file: "setup-errors.yaml", cwd: DIR }],
    ["contract problems", { file: "setup-bad-contract.yaml", cwd: DIR }],
    ["a missing file", { file: "no-such.yaml", cwd: DIR }],
  ];
  for (const [what, options] of cases) {
    it(`gives what loadBridgeSetup gives for ${what}`, async () => {
      const inThread = visible(await outcome(() => loadBridgeSetup(options)));
      const offThread = visible(await outcome(() => loadBridgeSetupOffThread(options)));
      expect(offThread).to.deep.equal(inThread);
    });
  }

  it("leaves the YAML parser and the schema library out of the calling thread", async () => {
    // A fresh process: this one loaded both long ago. The inspector lists every script
    // the calling thread's isolate compiled.
    const script = `
      import { Session } from "node:inspector/promises";
      const { loadBridgeSetupOffThread } = await import(${JSON.stringify(path.join(repoRoot(), "dist/cli/off-thread-setup.js"))});
      const setup = await loadBridgeSetupOffThread({ file: "setup-ok.yaml", cwd: ${JSON.stringify(DIR)} });
      const session = new Session();
      session.connect();
      const urls = [];
      session.on("Debugger.scriptParsed", (m) => urls.push(m.params.url));
      await session.post("Debugger.enable");
      console.log(JSON.stringify({ services: [...setup.contracts.services.keys()], urls }));
      session.disconnect();
    `;
    // From a file: a worker started under `node -e` inherits flags it rejects, and the
    // loader then falls back to this thread.
    const dir = mkdtempSync(path.join(os.tmpdir(), "sb-off-thread-"));
    const file = path.join(dir, "load.mjs");
    writeFileSync(file, script);
    let stdout: string;
    try {
      ({ stdout } = await exec(process.execPath, [file]));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    const { services, urls } = JSON.parse(stdout) as { services: string[]; urls: string[] };
    expect(services).to.deep.equal(["examples.orders.v1.Orders"]);
    expect(urls.some((u) => u.includes("/dist/bridge/contracts/"))).to.equal(true);
    expect(urls.filter((u) => /\/node_modules\/(zod|yaml)\//.test(u))).to.deep.equal([]);
  });
});
