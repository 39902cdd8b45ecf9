import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import { XMLParser } from "fast-xml-parser";
import puppeteer from "puppeteer-core";
import { CaseLoadError, loadCases } from "../../conformance/runner/case-loader.js";
import { writeReports } from "../../conformance/runner/report-files.js";
import { reportSchema } from "../../conformance/runner/report-schema.js";
import type { RunReport } from "../../conformance/runner/run-result.js";
import { type RunOptions, runConformance } from "../../conformance/runner/runner.js";
import { loadKnownFailing, loadTarget, parseKnownFailing } from "../../conformance/runner/target-file.js";
import { repoRoot } from "../support/repo-root.js";

const root = repoRoot();
const cases = loadCases(path.join(root, "conformance/cases"));
const reference = loadTarget(path.join(root, "conformance/targets/ts-reference.yaml"));
const REPORT_DIR = path.join(root, ".tools/conformance/reports/test");

function options(overrides: Partial<RunOptions>): RunOptions {
  return {
    root,
    target: reference,
    cases,
    knownFailing: loadKnownFailing(root, reference.name),
    mode: "all",
    seed: 1,
    parallel: 4,
    timeScale: 0.002,
    natsServerBinary: path.join(root, ".tools/bin/nats-server"),
    ...overrides,
  };
}

describe("conformance runner", function () {
  this.timeout(600_000);

  it("loads at least 60 cases that together name every rule S1–S15", () => {
    expect(cases.length).to.be.at.least(60);
    const named = new Set(cases.flatMap((c) => c.rules));
    for (let n = 1; n <= 15; n++) expect(named, `S${n}`).to.include(`S${n}`);
  });

  it("refuses a malformed case naming the file and the field", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "sb-conf-cases-"));
    try {
      mkdirSync(path.join(dir, "bad"));
      writeFileSync(
        path.join(dir, "bad/case.yaml"),
        "id: bad/case\ndescription: x\nrules: [S1]\nside: service\nsteps:\n  - call: Nope.Open\n",
      );
      expect(() => loadCases(dir)).to.throw(CaseLoadError, /bad\/case\.yaml: .*steps\.0/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe("a CI sample of 150 runs against the TypeScript reference (seed 1)", () => {
    let report: RunReport;
    let paths: ReturnType<typeof writeReports>;
    before(async () => {
      report = await runConformance(options({ sample: "150", seed: 1 }));
      paths = writeReports(REPORT_DIR, report);
    });

    it("passes every sampled case and says what it skipped and why", () => {
      const failures = report.results.filter((r) => r.status === "fail" || r.status === "stale");
      expect(failures.map((f) => `${f.caseId} ${JSON.stringify(f.permutation)}: ${f.failure}`)).to.deep.equal(
        [],
      );
      expect(report.summary.ok).to.equal(true);
      expect(report.summary.passed).to.be.at.least(30);
      const skipped = report.results.filter((r) => r.status === "skip");
      expect(report.summary.skipped).to.equal(skipped.length);
      expect(skipped.every((r) => (r.skipReason ?? "") !== "")).to.equal(true);
      expect(Object.values(report.summary.skipReasons).reduce((a, b) => a + b, 0)).to.equal(skipped.length);
    });

    it("writes a JSON report that matches its schema and a JUnit report that parses", () => {
      const json = reportSchema.parse(JSON.parse(readFileSync(paths.json, "utf8")));
      expect(json.results.length).to.equal(report.results.length);
      const junit = new XMLParser({ ignoreAttributes: false }).parse(readFileSync(paths.junit, "utf8")) as {
        testsuites: { "@_tests": string; testsuite: { testcase: unknown[] | unknown }[] };
      };
      expect(Number(junit.testsuites["@_tests"])).to.equal(report.results.length);
      const testcases = junit.testsuites.testsuite.flatMap((s) =>
        Array.isArray(s.testcase) ? s.testcase : [s.testcase],
      );
      expect(testcases.length).to.equal(report.results.length);
    });

    it("renders the HTML matrix in a headless browser, one cell per run", async () => {
      const browser = await puppeteer.launch({
        executablePath: process.env.CHROMIUM_PATH ?? "/usr/bin/chromium",
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
      });
      try {
        const page = await browser.newPage();
        await page.setViewport({ width: 1400, height: 900 });
        // Offline: the page must not fetch anything.
        await page.setRequestInterception(true);
        const fetched: string[] = [];
        page.on("request", (request) => {
          if (!request.url().startsWith("file:")) fetched.push(request.url());
          void request.continue();
        });
        await page.goto(`file://${paths.html}`, { waitUntil: "load" });
        const cells = await page.$$eval("#matrix td[data-status]:not(.na)", (tds) =>
          tds.map((td) => ({
            status: td.getAttribute("data-status"),
            id: td.getAttribute("data-case"),
            permutation: td.getAttribute("data-permutation"),
          })),
        );
        expect(cells.length).to.equal(report.results.length);
        expect(cells.filter((c) => c.status === "pass").length).to.equal(report.summary.passed);
        const columns = await page.$$eval("#matrix thead th[scope=col]", (ths) =>
          ths.map((th) => th.textContent),
        );
        expect(columns).to.deep.equal(report.summary.permutations);
        const screenshot = path.join(REPORT_DIR, "ts-reference.png");
        await page.screenshot({ path: screenshot, fullPage: true });
        expect(statSync(screenshot).size).to.be.greaterThan(1000);
        expect(fetched).to.deep.equal([]);
      } finally {
        await browser.close();
      }
    });
  });

  it("fails a service that applies a duplicate sb-seq twice, blaming S7 and nothing else", async () => {
    const faulty = loadTarget(path.join(root, "conformance/targets/ts-faulty-seq-reapply.yaml"));
    const report = await runConformance(
      options({
        target: faulty,
        knownFailing: parseKnownFailing(""),
        casesGlob: "sequence/*",
        mode: "direct",
        inbound: ["grpc"],
      }),
    );
    expect(report.summary.failed).to.be.greaterThan(0);
    expect(report.summary.blamedRules).to.deep.equal(["S7"]);
    expect(report.summary.ok, report.summary.verdict).to.equal(true);
    // The same cases pass on the reference: the blame is the break's, not the cases'.
    const clean = await runConformance(
      options({ casesGlob: "sequence/*", mode: "direct", inbound: ["grpc"] }),
    );
    expect(clean.summary.failed).to.equal(0);
  });

  it("runs the sessionless PingLabService.Ping directly and behind the bridge, without a session", async () => {
    const report = await runConformance(options({ casesGlob: "modalities/ping-sessionless" }));
    const runs = report.results.map((r) => `${r.status} ${r.permutation.mode} ${r.failure ?? ""}`.trim());
    // Every transport direct (3) and every inbound × outbound behind the bridge (9): none skipped.
    expect(runs).to.have.length(12);
    expect(runs.filter((r) => r === "pass bridged")).to.have.length(9);
    expect(runs.filter((r) => r === "pass direct")).to.have.length(3);
  });

  it("fails the run when a known-failing entry passes (stale entry)", async () => {
    const report = await runConformance(
      options({
        casesGlob: "lifecycle/open-act-finish",
        mode: "direct",
        inbound: ["grpc"],
        knownFailing: parseKnownFailing("lifecycle/open-act-finish direct *\n"),
      }),
    );
    expect(report.results.map((r) => r.status)).to.deep.equal(["stale"]);
    expect(report.summary.ok).to.equal(false);
    const listed = await runConformance(
      options({
        casesGlob: "lifecycle/open-act-finish",
        mode: "direct",
        inbound: ["grpc"],
        knownFailing: parseKnownFailing("lifecycle/open-act-finish bridged *\n"),
      }),
    );
    expect(listed.results.map((r) => r.status)).to.deep.equal(["pass"]);
    expect(listed.summary.ok).to.equal(true);
  });

  it("counts cases needing an undeclared feature as skipped, never as passed", async () => {
    const without = { ...reference, features: [] };
    const report = await runConformance(
      options({
        target: without,
        casesGlob: "streaming/items*",
        mode: "direct",
        knownFailing: parseKnownFailing(""),
      }),
    );
    expect(report.summary.passed).to.equal(0);
    expect(report.summary.skipped).to.equal(report.results.length);
    expect(report.results.length).to.equal(3 * 3);
    expect(Object.keys(report.summary.skipReasons)).to.deep.equal(["the target does not declare streaming"]);
    expect(report.summary.ok).to.equal(true);
  });

  it("runs expiry behind a bridge on the scaled time: the bridge expires a session the service keeps (S12)", async () => {
    // The faulty variant never expires sessions itself: SESSION_EXPIRED can only come from
    // the bridge, whose idle timeout (600000 ms in lab.proto) the time scale shortens.
    const never = loadTarget(path.join(root, "conformance/targets/ts-faulty-never-expire.yaml"));
    const report = await runConformance(
      options({
        target: never,
        knownFailing: parseKnownFailing(""),
        casesGlob: "expiry/idle-session-expires",
        mode: "bridged",
        inbound: ["grpc"],
        outbound: ["grpc"],
      }),
    );
    expect(report.results.map((r) => `${r.status} ${r.failure ?? ""}`)).to.deep.equal(["pass "]);
  });

  it("keeps the TypeScript reference's target files loadable", () => {
    // The reference has nothing known to fail: every case it declares must pass.
    expect(existsSync(path.join(root, "conformance/known-failing/ts-reference.txt"))).to.equal(false);
    expect(reference.features).to.deep.equal([
      "streaming",
      "sequential",
      "single",
      "durable",
      "expiry",
      "pipelining",
      "nats_streams",
    ]);
  });
});
