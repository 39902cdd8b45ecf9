import { readdirSync } from "node:fs";
import path from "node:path";
import { expect } from "chai";
import { loadCases } from "../../conformance/runner/case-loader.js";
import { TRANSPORTS } from "../../conformance/runner/lab-wire.js";
import { writeReports } from "../../conformance/runner/report-files.js";
import { runConformance } from "../../conformance/runner/runner.js";
import { loadKnownFailing, loadTarget } from "../../conformance/runner/target-file.js";
import { repoRoot } from "../support/repo-root.js";

const root = repoRoot();
const dir = path.join(root, "conformance/targets");
const cases = loadCases(path.join(root, "conformance/cases"));

/**
 * Every target file, as CI runs it (conformance/README.md): a service that must pass gets
 * a seeded sample of its whole matrix; a faulty one gets every case in direct mode over
 * the first transport it serves, and must be blamed on exactly the rules it breaks.
 * (The TypeScript reference's sample runs in runner.spec.ts.)
 */
describe("conformance targets", function () {
  this.timeout(900_000);
  for (const file of readdirSync(dir)
    .filter((f) => f.endsWith(".yaml"))
    .sort()) {
    const target = loadTarget(path.join(dir, file));
    if (target.name === "ts-reference") continue;
    const faulty = target.expect === "fail";
    it(`${target.name}: ${faulty ? `fails, blaming exactly ${target.breaks.join(", ")}` : "passes a seeded sample"}`, async () => {
      const first = TRANSPORTS.find((t) => target.transports.includes(t)) ?? "grpc";
      const report = await runConformance({
        root,
        target,
        cases,
        knownFailing: loadKnownFailing(root, target.name),
        mode: faulty ? "direct" : "all",
        ...(faulty ? { inbound: [first] } : { sample: "96" }),
        seed: 1,
        parallel: 4,
        timeScale: 0.002,
        natsServerBinary: path.join(root, ".tools/bin/nats-server"),
      });
      writeReports(path.join(root, ".tools/conformance/reports/test"), report);
      const failures = report.results
        .filter((r) => r.status === "fail" || r.status === "stale")
        .map((r) => `${r.caseId} ${r.blamed.join(",")}: ${r.failure?.split("\n")[0] ?? ""}`);
      expect(report.summary.ok, `${report.summary.verdict}\n${failures.join("\n")}`).to.equal(true);
      // Rule names compared as sets, in rule order (S9 before S10).
      const byRule = (a: string, b: string): number => a.localeCompare(b, "en", { numeric: true });
      if (faulty) {
        expect([...report.summary.blamedRules].sort(byRule)).to.deep.equal([...target.breaks].sort(byRule));
      }
    });
  }
});
