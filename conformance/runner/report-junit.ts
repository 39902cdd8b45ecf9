import { type CaseResult, permutationKey, type RunReport } from "./run-result.js";

/** XML 1.0 cannot carry most control characters, even escaped: they become U+FFFD. */
function xmlSafe(text: string): string {
  let out = "";
  for (const ch of text) {
    const c = ch.codePointAt(0) ?? 0;
    const surrogate = c >= 0xd800 && c <= 0xdfff;
    const allowed =
      c === 0x9 || c === 0xa || c === 0xd || (c >= 0x20 && !surrogate && c !== 0xfffe && c !== 0xffff);
    out += allowed ? ch : "\ufffd";
  }
  return out;
}

function xml(text: string): string {
  return xmlSafe(text)
    .replace(/&/g, "&amp;")
    .replace(/</g, "&lt;")
    .replace(/>/g, "&gt;")
    .replace(/"/g, "&quot;");
}

/** JUnit XML: one testsuite per permutation, one testcase per case; skips say why. */
export function junitReport(report: RunReport): string {
  const byPermutation = new Map<string, CaseResult[]>();
  for (const r of report.results) {
    const key = permutationKey(r.permutation);
    byPermutation.set(key, [...(byPermutation.get(key) ?? []), r]);
  }
  const suites = [...byPermutation.entries()].map(([key, results]) => {
    const failures = results.filter((r) => r.status === "fail" || r.status === "stale").length;
    const skipped = results.filter((r) => r.status === "skip" || r.status === "known-failure").length;
    const time = results.reduce((t, r) => t + r.durationMs, 0) / 1000;
    const cases = results.map((r) => {
      const open = `    <testcase classname="${xml(`${report.summary.target}.${key}`)}" name="${xml(r.caseId)}" time="${(r.durationMs / 1000).toFixed(3)}"`;
      if (r.status === "pass") return `${open}/>`;
      if (r.status === "skip")
        return `${open}>\n      <skipped message="${xml(r.skipReason ?? "")}"/>\n    </testcase>`;
      if (r.status === "known-failure") {
        return `${open}>\n      <skipped message="${xml(`known failure: ${r.failure ?? ""}`)}"/>\n    </testcase>`;
      }
      const rules = r.blamed.join(", ");
      const transcript = r.transcript.map((e) => JSON.stringify(e)).join("\n");
      return `${open}>\n      <failure message="${xml(`[${rules}] ${r.failure ?? ""}`)}" type="${xml(rules || "stale")}">${xml(transcript)}</failure>\n    </testcase>`;
    });
    return `  <testsuite name="${xml(`${report.summary.target} ${key}`)}" tests="${results.length}" failures="${failures}" errors="0" skipped="${skipped}" time="${time.toFixed(3)}">\n${cases.join("\n")}\n  </testsuite>`;
  });
  const s = report.summary;
  return `<?xml version="1.0" encoding="UTF-8"?>\n<testsuites name="sessionbridge conformance ${xml(s.target)}" tests="${s.total}" failures="${s.failed + s.stale}" skipped="${s.skipped + s.knownFailures}" time="${(s.durationMs / 1000).toFixed(3)}">\n${suites.join("\n")}\n</testsuites>\n`;
}
