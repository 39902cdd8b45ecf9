import { type CaseResult, permutationKey, type RunReport } from "./run-result.js";

function esc(text: string): string {
  return text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;").replace(/"/g, "&quot;");
}

const SYMBOL: Record<CaseResult["status"], string> = {
  pass: "✓",
  fail: "✗",
  skip: "–",
  "known-failure": "⚑",
  stale: "!",
};

/**
 * One self-contained page (inline CSS, no scripts, no network): the case × permutation
 * matrix as a grid, then each failure with the rule it broke and its transcript.
 */
export function htmlReport(report: RunReport): string {
  const s = report.summary;
  const columns = s.permutations;
  const caseIds = [...new Set(report.results.map((r) => r.caseId))].sort();
  const cell = new Map<string, CaseResult>();
  for (const r of report.results) cell.set(`${r.caseId}|${permutationKey(r.permutation)}`, r);
  const failures = report.results.filter((r) => r.status === "fail" || r.status === "stale");
  const anchor = (r: CaseResult) =>
    `f-${r.caseId.replace(/\W/g, "-")}-${permutationKey(r.permutation).replace(/\W/g, "-")}`;
  const rows = caseIds.map((id) => {
    const cells = columns.map((col) => {
      const r = cell.get(`${id}|${col}`);
      if (r === undefined) return `<td class="na" data-status="n/a" title="not applicable"></td>`;
      const title =
        r.status === "skip"
          ? (r.skipReason ?? "")
          : r.status === "pass"
            ? "passed"
            : `${r.blamed.join(", ")} ${r.failure ?? ""}`;
      const inner =
        r.status === "fail" || r.status === "stale"
          ? `<a href="#${anchor(r)}">${SYMBOL[r.status]}</a>`
          : SYMBOL[r.status];
      return `<td class="${r.status}" data-status="${r.status}" data-case="${esc(id)}" data-permutation="${esc(col)}" title="${esc(title)}">${inner}</td>`;
    });
    return `<tr><th scope="row" class="case">${esc(id)}</th>${cells.join("")}</tr>`;
  });
  const failureBlocks = failures.map((r) => {
    const exchanges = r.transcript
      .map((e) => {
        const parts = [`<div class="step">step ${e.step}: ${esc(e.label)}</div>`];
        if (e.request !== undefined)
          parts.push(`<pre class="req">→ ${esc(JSON.stringify(e.request, null, 2))}</pre>`);
        if (e.response !== undefined)
          parts.push(`<pre class="res">← ${esc(JSON.stringify(e.response, null, 2))}</pre>`);
        if (e.note !== undefined) parts.push(`<pre class="note">${esc(e.note)}</pre>`);
        return parts.join("");
      })
      .join("");
    return `<section class="failure" id="${anchor(r)}"><h3>${esc(r.caseId)} <small>${esc(permutationKey(r.permutation))}</small></h3>
<p class="rule">Rule broken: <strong>${esc(r.blamed.join(", ") || "none (stale known-failing entry)")}</strong></p>
<p>${esc(r.description)}</p><pre class="why">${esc(r.failure ?? "")}</pre>${exchanges}</section>`;
  });
  const skipList = Object.entries(s.skipReasons)
    .map(([why, n]) => `<li>${n} × ${esc(why)}</li>`)
    .join("");
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Conformance: ${esc(s.target)}</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#1d1d1f}
h1{font-size:20px}.verdict{padding:8px 12px;border-radius:6px;display:inline-block}
.ok{background:#e3f6e8}.bad{background:#fde7e7}
table.grid{border-collapse:collapse;margin:16px 0}
.grid th,.grid td{border:1px solid #ccc;padding:2px 6px;text-align:center}
.grid th.case{text-align:left;font-weight:normal;font-family:monospace;white-space:nowrap}
.grid thead th{writing-mode:vertical-rl;transform:rotate(180deg);font-weight:normal;font-size:12px}
td.pass{background:#c8ecd2}td.fail{background:#f6b8b8}td.skip{background:#eee;color:#888}
td.known-failure{background:#fbe3b0}td.stale{background:#e9b3f5}td.na{background:#fafafa}
td a{color:inherit;text-decoration:none}
.failure{border-top:2px solid #f0c0c0;margin-top:16px}
pre{background:#f6f6f6;padding:6px;overflow:auto;font-size:12px;white-space:pre-wrap}
.rule strong{color:#b00020}
</style></head><body>
<h1>sessionbridge conformance: ${esc(s.target)}</h1>
<p class="verdict ${s.ok ? "ok" : "bad"}">${s.ok ? "PASS" : "FAIL"}: ${esc(s.verdict)}</p>
<p>${s.cases} cases × ${s.permutations.length} permutations: ${s.total} runs, ${s.passed} passed, ${s.failed} failed,
${s.skipped} skipped, ${s.knownFailures} known failures, ${s.stale} stale; ${(s.durationMs / 1000).toFixed(1)} s.
Rules blamed: ${esc(s.blamedRules.join(", ") || "none")}.</p>
${skipList === "" ? "" : `<details><summary>Why cases were skipped</summary><ul>${skipList}</ul></details>`}
<p>✓ passed · ✗ failed (links to the transcript) · – skipped · ⚑ known failure · ! stale known-failing entry</p>
<table class="grid" id="matrix"><thead><tr><th>case</th>${columns.map((c) => `<th scope="col">${esc(c)}</th>`).join("")}</tr></thead>
<tbody>${rows.join("\n")}</tbody></table>
<h2>Failures (${failures.length})</h2>
${failureBlocks.join("\n")}
</body></html>
`;
}
