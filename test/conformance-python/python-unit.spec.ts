import { execFile } from "node:child_process";
import path from "node:path";
import { promisify } from "node:util";
import { expect } from "chai";
import { repoRoot } from "../support/repo-root.js";

const run = promisify(execFile);

describe("Python reference lab core: unit tests (unittest)", function () {
  this.timeout(180_000);

  it("passes every Python unit test of conformance/reference/python/tests", async () => {
    const python = path.join(repoRoot(), ".tools/conformance/python/venv/bin/python");
    const tests = path.join(repoRoot(), "conformance/reference/python/tests");
    let output: string;
    try {
      const { stderr } = await run(python, ["-m", "unittest", "discover", "-v", "-s", tests], {
        cwd: repoRoot(),
        maxBuffer: 16 << 20,
      });
      output = stderr;
    } catch (error) {
      const failed = error as { stderr?: string; message: string };
      throw new Error(`python unit tests failed:\n${failed.stderr ?? failed.message}`);
    }
    // unittest reports on stderr; a run that found no tests would say "Ran 0 tests".
    const ran = /Ran (\d+) tests?/.exec(output);
    expect(Number(ran?.[1] ?? 0)).to.be.greaterThan(10);
    expect(output).to.match(/\nOK\s*$/);
    expect(output).to.not.match(/skipped/);
  });
});
