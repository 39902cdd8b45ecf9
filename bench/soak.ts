/**
 * The sustained-turnover soak (npm run soak): a bridge on SQLite, then on the memory
 * store, in front of the grpc-go echo server, with SOAK_SESSIONS live sessions, most of
 * them idle, and SOAK_ACTIVE_SESSIONS active slots whose sessions live a bounded life and
 * are replaced (soak-plan.ts), at a fixed rate of mixed calls with one-way messages and
 * idempotency keys: what the bridge must keep stays level, so RSS growth measures leaks.
 * Retention is one minute (bench/soak.yaml), so purges of ended sessions run every 30 s
 * during the run. Reports, per store: RSS and heap over time, their growth after the
 * warm-up against the 5 % target, bytes written per call and write amplification, and
 * the longest delay a call saw while a purge ran. Writes bench/results/soak-latest.{json,md}.
 * See soak-settings.ts for the SOAK_* variables.
 */
import { writeFileSync } from "node:fs";
import path from "node:path";
import { resultsDir } from "./bench-paths.js";
import { startGoEcho } from "./bench-processes.js";
import { installChildCleanup } from "./children.js";
import { machineInfo } from "./machine-info.js";
import { renderSoakMarkdown } from "./soak-report.js";
import { runSoak, type SoakResult } from "./soak-run.js";
import { soakSettings } from "./soak-settings.js";

installChildCleanup();
const settings = soakSettings();
const machine = machineInfo();
const echo = await startGoEcho();
const runs: SoakResult[] = [];
// A full-length run is the latest result even for one store; shorter ones are partial.
const partial = settings.seconds < 600;
const base = path.join(resultsDir(), partial ? "soak-partial" : "soak-latest");
const json = `${base}.json${partial ? ".tmp" : ""}`;
const md = `${base}.md${partial ? ".tmp" : ""}`;
/** Written after each store's run, so a run stopped during the next store keeps what it measured. */
const write = (): string => {
  const markdown = renderSoakMarkdown({ machine, settings, runs });
  writeFileSync(json, `${JSON.stringify({ machine, settings, runs }, null, 2)}\n`);
  writeFileSync(md, markdown);
  return markdown;
};
try {
  for (const store of settings.stores) {
    process.stderr.write(`soak: ${store}, ${settings.seconds} s\n`);
    runs.push(await runSoak(echo, store, settings));
    write();
  }
} finally {
  await echo.stop();
}
process.stdout.write(write());
process.stderr.write(`soak: wrote ${json}, ${md}\n`);
const problems = runs.flatMap((r) => r.problems);
if (problems.length > 0) {
  process.stderr.write(`\nsoak FAILED:\n${problems.map((p) => `  - ${p}`).join("\n")}\n`);
  process.exitCode = 1;
}
