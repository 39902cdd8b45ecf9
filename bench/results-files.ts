import { mkdirSync, renameSync, writeFileSync } from "node:fs";
import path from "node:path";
import { resultsDir } from "./bench-paths.js";
import type { BenchResults } from "./bench-results.js";
import { renderMarkdown } from "./report-markdown.js";
import { renderSvg } from "./report-svg.js";

/**
 * Writes latest.json, latest.md and latest.svg (each through a .tmp file and a rename, so
 * a killed run never leaves half a file). A partial run (BENCH_ONLY) writes partial.*.tmp
 * instead, which git ignores, so it never replaces the committed full results.
 */
export function writeResults(results: BenchResults, partial: boolean): string[] {
  const dir = resultsDir();
  mkdirSync(dir, { recursive: true });
  const files: [string, string][] = [
    ["json", `${JSON.stringify(results, null, 2)}\n`],
    ["md", renderMarkdown(results)],
    ["svg", renderSvg(results)],
  ];
  return files.map(([ext, text]) => {
    const target = path.join(dir, partial ? `partial.${ext}.tmp` : `latest.${ext}`);
    const temp = `${target}.${process.pid}.tmp`;
    writeFileSync(temp, text);
    renameSync(temp, target);
    return target;
  });
}
