import { execFileSync, spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";

// scripts/check-breaking.sh guards the contracts in `npm test`. It must really compare: a
// contract change that deletes an RPC fails it, and a compatible one passes.
const repoRoot = path.resolve(import.meta.dirname, "../../..");
const contract = "examples/orders/proto/examples/orders/v1/orders.proto";

describe("scripts/check-breaking.sh", function () {
  this.timeout(120_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "sb-breaking-"));
    for (const item of ["buf.yaml", "proto", "examples/orders/proto", "scripts/check-breaking.sh"]) {
      cpSync(path.join(repoRoot, item), path.join(dir, item), { recursive: true });
    }
    symlinkSync(path.join(repoRoot, "node_modules"), path.join(dir, "node_modules"));
    // As many files as a real checkout lists after buf.yaml: a check that reads the tree
    // through a pipe must not give up when the reader stops early (SIGPIPE under pipefail).
    mkdirSync(path.join(dir, "zz"));
    for (let i = 0; i < 3000; i++) writeFileSync(path.join(dir, "zz", `file-${i}.txt`), "");
    const git = (...args: string[]) => execFileSync("git", args, { cwd: dir, stdio: "pipe" });
    git("init", "-q");
    git("-c", "user.name=t", "-c", "user.email=t@t", "add", "buf.yaml", "proto", "examples", "scripts", "zz");
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "contracts");
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const run = () => spawnSync("bash", ["scripts/check-breaking.sh"], { cwd: dir, encoding: "utf8" });

  it("fails when an uncommitted change deletes an RPC (by renaming it)", () => {
    const file = path.join(dir, contract);
    const source = readFileSync(file, "utf8");
    // Renaming an RPC deletes the old one for every client built against it.
    const withoutOne = source.replace("rpc Get(", "rpc Fetch(");
    expect(withoutOne).to.not.equal(source);
    writeFileSync(file, withoutOne);
    try {
      const result = run();
      expect(result.status, result.stdout + result.stderr).to.not.equal(0);
      expect(result.stdout + result.stderr).to.match(/was deleted/);
    } finally {
      writeFileSync(file, source);
    }
  });

  it("passes a compatible uncommitted change, after comparing it with the last commit", () => {
    const file = path.join(dir, contract);
    const source = readFileSync(file, "utf8");
    writeFileSync(file, `${source}\n// A comment changes nothing on the wire.\n`);
    try {
      const result = run();
      expect(result.status, result.stdout + result.stderr).to.equal(0);
      expect(result.stdout).to.match(/no breaking change against HEAD/);
    } finally {
      writeFileSync(file, source);
    }
  });
});
