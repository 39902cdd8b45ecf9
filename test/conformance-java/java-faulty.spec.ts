import assert from "node:assert/strict";
import { buildConformance, labClients, startJavaLab } from "./java-lab-process.js";
import { PROBES } from "./lab-probes.js";

/** The Java faulty services (conformance/faulty/java/README.md) and the rule each breaks. */
const SERVICES: readonly {
  readonly target: string;
  readonly breakRule?: string;
  readonly broken?: string;
}[] = [
  { target: "java-reference" },
  { target: "java-faulty-never-expire", breakRule: "never-expire", broken: "expiry" },
  { target: "java-faulty-drop-metadata", breakRule: "drop-metadata", broken: "metadata" },
  { target: "java-faulty-ignore-deadlines", breakRule: "ignore-deadlines", broken: "deadline" },
];

describe("conformance: Java faulty services break exactly their rule", function () {
  this.timeout(600_000);
  before(() => {
    buildConformance("conformance/faulty/java/build.sh");
  });

  for (const service of SERVICES) {
    it(`${service.target} ${service.broken === undefined ? "keeps every probed rule" : `breaks only ${service.broken}`}`, async function () {
      this.timeout(120_000);
      const kept: Record<string, boolean> = {};
      for (const probe of PROBES) {
        const lab = await startJavaLab({
          timeScale: probe.timeScale,
          ...(service.breakRule === undefined ? {} : { breakRule: service.breakRule }),
        });
        const clients = labClients(lab.addresses.grpc);
        try {
          kept[probe.name] = await probe.keeps(clients, `${service.target}-${probe.name}`);
        } finally {
          clients.close();
          await lab.stop();
        }
      }
      const expected = Object.fromEntries(PROBES.map((p) => [p.name, p.name !== service.broken]));
      assert.deepEqual(kept, expected);
    });
  }
});
