import { spawn } from "node:child_process";
import path from "node:path";
import { expect } from "chai";
import { repoRoot } from "../support/repo-root.js";

const HERE = path.join(repoRoot(), "test/connect-conformance");
const RUNNER = path.join(repoRoot(), ".tools/bin/connectconformance");
const SERVER = path.join(repoRoot(), "dist/test/connect-conformance/server-under-test.js");

/**
 * connectrpc.com/conformance in server mode against the bridge in front of the suite's
 * reference server: Connect, gRPC and gRPC-Web, HTTP/1.1 and h2c, proto and JSON,
 * identity and gzip, unary and server streaming (server-features.yaml). Cases that fail
 * on purpose are listed with their reasons in known-failing.txt; the runner fails the run
 * when one of them passes, so the list cannot go stale. The whole matrix runs here (about
 * 1,300 cases); `npm run conformance:connect` runs the same command by hand.
 */
describe("Connect conformance: the bridge in front of the reference server", function () {
  this.timeout(15 * 60_000);

  it("passes every case it declares, apart from the known-failing list", async () => {
    const args = [
      "--mode",
      "server",
      "--conf",
      path.join(HERE, "server-features.yaml"),
      "--known-failing",
      `@${path.join(HERE, "known-failing.txt")}`,
      "--known-flaky",
      `@${path.join(HERE, "known-flaky.txt")}`,
      "--",
      process.execPath,
      SERVER,
    ];
    const { code, output } = await run(RUNNER, args);
    const totals = /Total cases: (\d+)\n(\d+) passed, (\d+) failed/.exec(output);
    console.log(`      ${totals?.[0].replace("\n", "; ") ?? "no totals printed"}`);
    if (code !== 0) console.log(output.slice(-8000));
    expect(code, "connectconformance exit status").to.equal(0);
    expect(totals, "the runner's totals").to.not.equal(null);
    expect(Number(totals?.[1])).to.be.greaterThan(1000);
  });
});

function run(command: string, args: readonly string[]): Promise<{ code: number | null; output: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    // Bounded: the runner prints a few lines per failure; keep the last part only.
    const keep = (chunk: Buffer): void => {
      output = (output + chunk.toString("utf8")).slice(-200_000);
    };
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.once("error", reject);
    child.once("close", (code) => resolve({ code, output }));
  });
}
