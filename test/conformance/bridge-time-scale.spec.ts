import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import { loadConfig } from "../../bridge/config/load-config.js";

/** defaults.timeScale: what the conformance runner gives a bridge for expiry cases (S12). */
describe("bridge configuration: defaults.timeScale", () => {
  let dir: string;
  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "sb-time-scale-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  const load = (value: string) => {
    writeFileSync(path.join(dir, "c.yaml"), `store: memory\ndefaults:\n  timeScale: ${value}\n`);
    return loadConfig({ file: "c.yaml", cwd: dir });
  };

  it("accepts a scale in (0, 1] and is absent by default", () => {
    expect(load("0.002").defaults.timeScale).to.equal(0.002);
    expect(load("1").defaults.timeScale).to.equal(1);
    writeFileSync(path.join(dir, "d.yaml"), "store: memory\n");
    expect(loadConfig({ file: "d.yaml", cwd: dir }).defaults.timeScale).to.equal(undefined);
  });

  it("refuses zero, negative and larger-than-one scales, naming the key", () => {
    for (const bad of ["0", "-1", "2", '"fast"']) {
      expect(() => load(bad), bad).to.throw(/defaults\.timeScale/);
    }
  });
});
