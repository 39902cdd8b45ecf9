import { expect } from "chai";
import { loadBridgeSetup } from "../../../bridge/config/check-config.js";
import { ConfigError, formatConfigProblem } from "../../../bridge/config/config-error.js";
import { ContractError } from "../../../bridge/contracts/contract-error.js";
import { fixturePath } from "../../support/repo-root.js";

const DIR = fixturePath("config");

describe("loadBridgeSetup", () => {
  it("loads a configuration and its contracts that fit each other", () => {
    const setup = loadBridgeSetup({ file: "setup-ok.yaml", cwd: DIR });
    expect(setup.config.processes.map((p) => p.name)).to.deep.equal(["orders"]);
    expect([...setup.contracts.services.keys()]).to.deep.equal(["examples.orders.v1.Orders"]);
    expect(setup.contracts.operations.size).to.equal(5);
  });

  it("accepts the embedded defaults: nothing to serve, nothing to check", () => {
    const setup = loadBridgeSetup({ cwd: fixturePath("contracts") });
    expect(setup.contracts.services.size).to.equal(0);
    expect(setup.config.processes).to.deep.equal([]);
  });

  it("reports unknown and doubly served services at their place in the file", () => {
    let error: unknown;
    try {
      loadBridgeSetup({ file: "setup-errors.yaml", cwd: DIR });
    } catch (caught) {
      error = caught;
    }
    expect(error).to.be.instanceOf(ConfigError);
    expect((error as ConfigError).problems.map(formatConfigProblem)).to.deep.equal([
      "setup-errors.yaml:6:46: processes[0].services[1]: service fixtures.missing.v1.Nowhere of process first is not in the contracts (declared: fixtures.types.v1.Typed, fixtures.modalities.v1.Plain, fixtures.modalities.v1.Queue, fixtures.modalities.v1.Singleton)",
      "setup-errors.yaml:9:41: processes[1].services[1]: service fixtures.modalities.v1.Plain is served by processes first and second; each service needs exactly one",
    ]);
  });

  it("serves a subset: services without a process are left out and listed", () => {
    const setup = loadBridgeSetup({ file: "setup-subset.yaml", cwd: DIR });
    expect([...setup.contracts.services.keys()]).to.deep.equal(["fixtures.modalities.v1.Plain"]);
    expect([...setup.contracts.operations.keys()]).to.deep.equal([
      "/fixtures.modalities.v1.Plain/Echo",
      "/fixtures.modalities.v1.Plain/Watch",
    ]);
    expect(setup.unserved.map((s) => `${s.name} ${s.file}`)).to.deep.equal([
      "fixtures.modalities.v1.Queue valid/modalities.proto",
      "fixtures.modalities.v1.Singleton valid/modalities.proto",
    ]);
    // The compiled definitions keep every type, served or not.
    expect(setup.contracts.registry.getService("fixtures.modalities.v1.Queue")).to.not.equal(undefined);
  });

  it("lets one process serve a whole package with package.*, sub-packages excluded", () => {
    const setup = loadBridgeSetup({ file: "setup-wildcard.yaml", cwd: DIR });
    expect(setup.config.processes.map((p) => [p.name, p.services])).to.deep.equal([
      [
        "modalities",
        ["fixtures.modalities.v1.Plain", "fixtures.modalities.v1.Queue", "fixtures.modalities.v1.Singleton"],
      ],
      ["typed", ["fixtures.types.v1.Typed"]],
    ]);
    expect([...setup.contracts.services.keys()].sort()).to.deep.equal([
      "fixtures.modalities.v1.Plain",
      "fixtures.modalities.v1.Queue",
      "fixtures.modalities.v1.Singleton",
      "fixtures.types.v1.Typed",
    ]);
    expect(setup.unserved.map((s) => s.name)).to.deep.equal(["fixtures.modalities.v1.extra.Extra"]);
  });

  it("refuses a pattern that matches nothing and a service claimed by a pattern and a name", () => {
    let error: unknown;
    try {
      loadBridgeSetup({ file: "setup-wildcard-errors.yaml", cwd: DIR });
    } catch (caught) {
      error = caught;
    }
    expect(error).to.be.instanceOf(ConfigError);
    expect((error as ConfigError).problems.map(formatConfigProblem)).to.deep.equal([
      "setup-wildcard-errors.yaml:7:16: processes[0].services[0]: pattern fixtures.modalities.* of process first matches no service of the contracts (declared: fixtures.modalities.v1.Plain, fixtures.modalities.v1.Queue, fixtures.modalities.v1.Singleton, fixtures.modalities.v1.extra.Extra)",
      "setup-wildcard-errors.yaml:10:16: processes[1].services[0]: service fixtures.modalities.v1.Queue is served by processes first and second; each service needs exactly one",
    ]);
  });

  it("refuses streaming operations for an envelope-native process", () => {
    expect(() => loadBridgeSetup({ file: "setup-envelope-streams.yaml", cwd: DIR }))
      .to.throw(ConfigError)
      .with.property("problems")
      .that.deep.equals([
        {
          file: "setup-envelope-streams.yaml",
          line: 7,
          column: 16,
          path: "processes[0].services[0]",
          message:
            "process lab is envelope-native (envelope: true) but test.lab.v1.Counter has streaming operations (Watch, Upload, Chat); envelope-native processes serve unary operations only",
        },
      ]);
  });

  it("passes contract problems on as a ContractError", () => {
    expect(() => loadBridgeSetup({ file: "setup-bad-contract.yaml", cwd: DIR }))
      .to.throw(ContractError)
      .with.property("message")
      .that.contains("invalid/flags.proto:16:3: fixtures.flags.v1.Flags.NoCorrelation:");
  });
});
