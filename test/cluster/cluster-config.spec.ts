import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import { createPartitioning } from "../../bridge/cluster/partitions.js";
import { ConfigError } from "../../bridge/config/config-error.js";
import { loadConfig } from "../../bridge/config/load-config.js";

/** `cluster:` in YAML and `--replica NAME`: only with the jetstream store, clear errors otherwise. */
describe("cluster configuration and partitions", () => {
  let dir: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "sb-cluster-config-"));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const fromYaml = (text: string, overrides = {}) => {
    const file = path.join(dir, "bridge.yaml");
    writeFileSync(file, text);
    return loadConfig({ file, cwd: dir, overrides });
  };

  const problem = (run: () => unknown): string => {
    try {
      run();
    } catch (error) {
      expect(error).to.be.instanceOf(ConfigError);
      return (error as Error).message;
    }
    throw new Error("expected a configuration error");
  };

  it("reads cluster: with defaults, and --replica names the replica", () => {
    const config = fromYaml(
      "store: jetstream:o\ncluster: { replica: r1, partitions: 32, leaseTtlMs: 4000 }\n",
    );
    expect(config.cluster).to.deep.equal({ replica: "r1", partitions: 32, leaseTtlMs: 4000 });
    const named = fromYaml("store: jetstream\ncluster: {}\n", { replica: "r2" });
    expect(named.cluster).to.deep.equal({ replica: "r2", partitions: 64, leaseTtlMs: 5000 });
    expect(
      loadConfig({ cwd: dir, overrides: { store: "jetstream", replica: "r3" } }).cluster?.replica,
    ).to.equal("r3");
    expect(fromYaml("store: jetstream\n").cluster).to.equal(undefined);
  });

  it("refuses a cluster without the jetstream store, without a replica name, or with bad values", () => {
    expect(problem(() => fromYaml("store: memory\ncluster: { replica: r1 }\n"))).to.match(
      /cluster.*only through the jetstream store.*got store: memory/s,
    );
    expect(problem(() => loadConfig({ cwd: dir, overrides: { replica: "r1" } }))).to.match(
      /--replica.*jetstream store.*got store: sqlite/s,
    );
    expect(problem(() => fromYaml("store: jetstream\ncluster: {}\n"))).to.match(/cluster.*replica/s);
    expect(problem(() => fromYaml("store: jetstream\ncluster: { replica: 'a b' }\n"))).to.match(
      /cluster\.replica.*invalid replica name/s,
    );
    expect(problem(() => fromYaml("store: jetstream\ncluster: { replica: a, partitions: 5000 }\n"))).to.match(
      /cluster\.partitions.*too many partitions/s,
    );
    expect(problem(() => fromYaml("store: jetstream\ncluster: { replica: a, leaseTtlMs: 10 }\n"))).to.match(
      /cluster\.leaseTtlMs.*too short a lease/s,
    );
    expect(
      problem(() => loadConfig({ cwd: dir, overrides: { store: "jetstream", replica: "-x y" } })),
    ).to.match(/--replica.*invalid replica name/s);
  });

  it("draws new session ids in the partition asked for, ids of full length", () => {
    const partitioning = createPartitioning(64);
    for (let p = 0; p < 64; p++) {
      const id = partitioning.sessionIdIn(p);
      expect(id).to.match(/^[A-Za-z0-9][A-Za-z0-9_-]{21}$/);
      expect(partitioning.ofSession(id)).to.equal(p);
    }
    // Starters with equal values hash alike on every replica (S5).
    expect(partitioning.ofCorrelation("s.v1.S", "k")).to.equal(
      createPartitioning(64).ofCorrelation("s.v1.S", "k"),
    );
  });
});
