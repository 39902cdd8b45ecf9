import { mkdirSync, writeFileSync } from "node:fs";
import path from "node:path";
import { htmlReport } from "./report-html.js";
import { junitReport } from "./report-junit.js";
import type { RunReport } from "./run-result.js";

export interface ReportPaths {
  readonly json: string;
  readonly junit: string;
  readonly html: string;
}

/** Writes the three reports of a run: `<target>.json`, `<target>.junit.xml`, `<target>.html`. */
export function writeReports(dir: string, report: RunReport): ReportPaths {
  mkdirSync(dir, { recursive: true });
  const base = path.join(dir, report.summary.target);
  const paths = { json: `${base}.json`, junit: `${base}.junit.xml`, html: `${base}.html` };
  writeFileSync(paths.json, `${JSON.stringify(report, null, 2)}\n`);
  writeFileSync(paths.junit, junitReport(report));
  writeFileSync(paths.html, htmlReport(report));
  return paths;
}
