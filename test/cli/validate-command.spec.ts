import { PassThrough } from "node:stream";
import { expect } from "chai";
import { validateCommand } from "../../cli/validate-command.js";
import { fixturePath } from "../support/repo-root.js";

function run(config: string): { code: number; out: string; err: string } {
  const out = new PassThrough();
  const err = new PassThrough();
  const code = validateCommand({ config }, out, err);
  return { code, out: String(out.read() ?? ""), err: String(err.read() ?? "") };
}

describe("sessionbridge validate", () => {
  it("counts what is served and lists each service no process names", () => {
    const result = run(fixturePath("config/setup-subset.yaml"));
    expect(result.code).to.equal(0);
    const lines = result.out.trim().split("\n");
    expect(lines[0]).to.match(
      /^valid: .*setup-subset\.yaml: 1 service\(s\), 2 operation\(s\), 1 process\(es\), /,
    );
    expect(lines.slice(1)).to.deep.equal([
      "not served: fixtures.modalities.v1.Queue (declared in valid/modalities.proto; no process names it)",
      "not served: fixtures.modalities.v1.Singleton (declared in valid/modalities.proto; no process names it)",
    ]);
  });

  it("reports a pattern that matches nothing at its place and exits 2", () => {
    const result = run(fixturePath("config/setup-wildcard-errors.yaml"));
    expect(result.code).to.equal(2);
    expect(result.err).to.include(
      "setup-wildcard-errors.yaml:7:16: processes[0].services[0]: pattern fixtures.modalities.* of process first matches no service",
    );
  });
});
