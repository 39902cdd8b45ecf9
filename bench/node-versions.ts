/**
 * The bridge on several Node releases, in one sitting: `rounds` rounds, each running the
 * benchmark once per node binary (BENCH_BRIDGE_NODE; the generator, the echo server and
 * this process stay on the Node that runs it), so the releases take turns under the same
 * load of the machine. Prints a markdown table of the bridge's figures per release and
 * round and the medians against the first release, and keeps every run's JSON in
 * results/node-versions.tmp/. Not a test.
 *
 *   bash bench/install-node.sh 22.23.5; bash bench/install-node.sh 24.22.3
 *   node dist/bench/node-versions.js [rounds] [node binary …]
 *
 * Without binaries: this process's Node, then every .tools/node-*\/bin/node. BENCH_ONLY
 * defaults to the memory-store rows (SQLite's native addon is built for the Node that ran
 * `npm ci` only); every other BENCH_* setting passes through.
 */
import { execFileSync, spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { benchModule, repoRoot, resultsDir } from "./bench-paths.js";
import type { BenchResults } from "./bench-results.js";

const [roundsArg, ...binariesArg] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 2);
if (!Number.isInteger(rounds) || rounds < 1)
  throw new Error(`rounds must be a positive integer, got ${roundsArg}`);
const only = process.env.BENCH_ONLY ?? "bridged-passthrough/,bridged-memory/";

const toolsDir = path.join(repoRoot(), ".tools");
const installed = existsSync(toolsDir)
  ? readdirSync(toolsDir)
      .filter((name) => /^node-\d+\.\d+\.\d+$/.test(name))
      .sort((a, b) => a.localeCompare(b, "en", { numeric: true }))
      .map((name) => path.join(toolsDir, name, "bin", "node"))
  : [];
const binaries = binariesArg.length > 0 ? binariesArg : [process.execPath, ...installed];
const version = (node: string): string => execFileSync(node, ["--version"], { encoding: "utf8" }).trim();
const nodes = binaries.map((binary) => ({ binary, version: version(binary) }));

const keepDir = path.join(resultsDir(), "node-versions.tmp");
mkdirSync(keepDir, { recursive: true });

interface Row {
  readonly node: string;
  readonly round: number;
  readonly scenario: string;
  readonly throughput: number;
  readonly cpuPer1000: number | undefined;
  readonly gcTotalMs: number | undefined;
  readonly gcMaxMs: number | undefined;
  readonly scavenges: number | undefined;
  readonly majors: number | undefined;
  readonly heapKbPerCall: number | undefined;
  readonly rssPeakMb: number | undefined;
  readonly otherCores: number | undefined;
}

const rows: Row[] = [];
const loadAverages: number[] = [];
const failures: string[] = [];
for (let round = 1; round <= rounds; round++) {
  for (const node of nodes) {
    process.stderr.write(`node-versions: round ${round}, bridge on Node ${node.version}\n`);
    loadAverages.push(os.loadavg()[0] ?? 0);
    const run = spawnSync(process.execPath, [benchModule("run.js")], {
      env: { ...process.env, BENCH_ONLY: only, BENCH_BRIDGE_NODE: node.binary },
      stdio: ["ignore", "ignore", "inherit"],
    });
    if (run.status !== 0) failures.push(`round ${round}, Node ${node.version}: bench exited ${run.status}`);
    const file = path.join(resultsDir(), "partial.json.tmp");
    const kept = path.join(keepDir, `${node.version}-round${round}.json`);
    copyFileSync(file, kept);
    const results = JSON.parse(readFileSync(kept, "utf8")) as BenchResults;
    if (results.machine.bridgeNode !== node.version) {
      throw new Error(`${kept}: bridge ran on ${results.machine.bridgeNode}, expected ${node.version}`);
    }
    for (const s of results.scenarios) {
      rows.push({
        node: node.version,
        round,
        scenario: s.id,
        throughput: s.load.throughputPerSec,
        cpuPer1000: s.bridge?.cpuSecondsPer1000,
        gcTotalMs: s.bridgeGc?.totalMs,
        gcMaxMs: s.bridgeGc?.maxPauseMs,
        scavenges: s.bridgeGc?.scavenges,
        majors: s.bridgeGc?.majors,
        heapKbPerCall:
          s.bridgeGc?.allocatedBytesPerCall === undefined
            ? undefined
            : s.bridgeGc.allocatedBytesPerCall / 1000,
        rssPeakMb: s.bridge?.rssPeakBytes === undefined ? undefined : s.bridge.rssPeakBytes / 1024 ** 2,
        otherCores: s.machine?.otherCores,
      });
    }
  }
}

const f = (value: number | undefined, digits: number): string =>
  value === undefined || Number.isNaN(value) ? "–" : value.toFixed(digits);
const median = (values: readonly number[]): number | undefined => {
  if (values.length === 0) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
const table = (header: readonly string[], body: readonly (readonly string[])[]): string =>
  [header, header.map((_, i) => (i < 2 ? "---" : "---:")), ...body]
    .map((r) => `| ${r.join(" | ")} |`)
    .join("\n");

const out: string[] = [];
out.push(
  `bridge children on ${nodes.map((n) => n.version).join(", ")}; ${rounds} round(s), interleaved; ` +
    `BENCH_ONLY=${only}; load average (1 min) at each run's start ${loadAverages.map((l) => l.toFixed(1)).join(", ")}`,
);
out.push("");
out.push(
  table(
    [
      "scenario",
      "Node",
      "round",
      "req/s",
      "bridge CPU s / 1000",
      "GC ms total",
      "longest GC (ms)",
      "young / full GCs",
      "heap KB / call",
      "RSS peak (MB)",
      "other load (cores)",
    ],
    [...rows]
      .sort((a, b) => a.scenario.localeCompare(b.scenario) || a.round - b.round)
      .map((r) => [
        r.scenario,
        r.node,
        String(r.round),
        f(r.throughput, 0),
        f(r.cpuPer1000, 3),
        f(r.gcTotalMs, 0),
        f(r.gcMaxMs, 1),
        `${f(r.scavenges, 0)} / ${f(r.majors, 0)}`,
        f(r.heapKbPerCall, 1),
        f(r.rssPeakMb, 0),
        f(r.otherCores, 2),
      ]),
  ),
);
out.push("");
out.push(`Medians over the rounds, and ÷ the same figure on Node ${nodes[0]?.version}:`);
out.push("");
const scenarios = [...new Set(rows.map((r) => r.scenario))].sort();
const body: string[][] = [];
for (const scenario of scenarios) {
  const pick = (node: string, figure: (r: Row) => number | undefined): number | undefined =>
    median(
      rows
        .filter((r) => r.scenario === scenario && r.node === node)
        .map(figure)
        .filter((v): v is number => v !== undefined && !Number.isNaN(v)),
    );
  const base = nodes[0]?.version ?? "";
  for (const node of nodes) {
    const cell = (figure: (r: Row) => number | undefined, digits: number): string => {
      const value = pick(node.version, figure);
      const reference = pick(base, figure);
      if (value === undefined) return "–";
      if (node.version === base || reference === undefined || reference === 0) return f(value, digits);
      return `${f(value, digits)} (${f(value / reference, 2)}×)`;
    };
    body.push([
      scenario,
      node.version,
      cell((r) => r.throughput, 0),
      cell((r) => r.cpuPer1000, 3),
      cell((r) => r.gcTotalMs, 0),
      cell((r) => r.heapKbPerCall, 1),
    ]);
  }
}
out.push(table(["scenario", "Node", "req/s", "bridge CPU s / 1000", "GC ms total", "heap KB / call"], body));
out.push("");
process.stdout.write(`${out.join("\n")}\n`);
if (failures.length > 0) {
  process.stderr.write(`\nnode-versions: runs that failed:\n${failures.map((x) => `  - ${x}`).join("\n")}\n`);
  process.exitCode = 1;
}
