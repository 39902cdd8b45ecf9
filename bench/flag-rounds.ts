/**
 * V8/Node flags for the bridge, compared in one sitting: `rounds` rounds, each running
 * the benchmark once per flag set (BENCH_BRIDGE_NODE_ARGS; "" is Node's defaults), so the
 * variants take turns under the same load of the machine. Pause counts and the phase
 * composition of collections hold on a loaded machine where wall times do not: with
 * BENCH_TRACE=1 each run also gets --trace-gc --trace-gc-nvp and the table adds V8's own
 * pause figures over the window (gc-nvp.ts). Keeps each run's JSON in
 * results/flag-rounds.tmp/. Not a test.
 *
 *   BENCH_TRACE=1 node dist/bench/flag-rounds.js 3 "" "--single-threaded-gc"
 *
 * BENCH_ONLY defaults to the two fixed-rate rows the pause targets are about.
 */
import { spawnSync } from "node:child_process";
import { copyFileSync, existsSync, mkdirSync, readFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { benchModule, resultsDir } from "./bench-paths.js";
import type { BenchResults } from "./bench-results.js";
import { type NvpSummary, readNvp, summariseNvp } from "./gc-nvp.js";
import type { PauseTrace } from "./pause-log.js";
import { traceBase } from "./scenarios.js";

const [roundsArg, ...variants] = process.argv.slice(2);
const rounds = Number(roundsArg ?? 2);
if (!Number.isInteger(rounds) || rounds < 1 || variants.length === 0) {
  process.stderr.write('usage: flag-rounds <rounds> "<flags>" "<flags>" … ("" for the defaults)\n');
  process.exit(2);
}
const only = process.env.BENCH_ONLY ?? "bridged-passthrough/fixed,bridged-memory/fixed";
const tracing = process.env.BENCH_TRACE === "1";
const keepDir = path.join(resultsDir(), "flag-rounds.tmp");
mkdirSync(keepDir, { recursive: true });

interface Row {
  readonly flags: string;
  readonly round: number;
  readonly scenario: string;
  readonly p99Ms: number;
  readonly p99SendMs: number | undefined;
  readonly gcMaxMs: number | undefined;
  readonly over5: number | undefined;
  readonly scavenges: number | undefined;
  readonly majors: number | undefined;
  readonly promotedKbPerCall: number | undefined;
  readonly cpuPer1000: number | undefined;
  readonly rssPeakMb: number | undefined;
  readonly otherCores: number | undefined;
  /** V8's figures over the window (BENCH_TRACE): by gc kind (s, ms, …). */
  readonly nvp: Record<string, NvpSummary> | undefined;
}

function windowNvp(scenario: string): Record<string, NvpSummary> | undefined {
  const base = traceBase(scenario);
  if (!existsSync(`${base}.bridge.json`)) return undefined;
  const trace = JSON.parse(readFileSync(`${base}.bridge.json`, "utf8")) as PauseTrace;
  const from = trace.fromMs - trace.originMs;
  return summariseNvp(readNvp(`${base}.bridge-stdout.log`).filter((g) => g.atMs >= from));
}

const rows: Row[] = [];
const loadAverages: number[] = [];
const failures: string[] = [];
for (let round = 1; round <= rounds; round++) {
  variants.forEach((flags, v) => {
    process.stderr.write(`flag-rounds: round ${round}, bridge flags "${flags}"\n`);
    loadAverages.push(os.loadavg()[0] ?? 0);
    const nodeArgs = tracing ? `${flags} --trace-gc --trace-gc-nvp` : flags;
    const run = spawnSync(process.execPath, [benchModule("run.js")], {
      env: { ...process.env, BENCH_ONLY: only, BENCH_BRIDGE_NODE_ARGS: nodeArgs.trim() },
      stdio: ["ignore", "ignore", "inherit"],
    });
    if (run.status !== 0) failures.push(`round ${round}, "${flags}": bench exited ${run.status}`);
    const kept = path.join(keepDir, `v${v}-round${round}.json`);
    copyFileSync(path.join(resultsDir(), "partial.json.tmp"), kept);
    const results = JSON.parse(readFileSync(kept, "utf8")) as BenchResults;
    for (const s of results.scenarios) {
      rows.push({
        flags,
        round,
        scenario: s.id,
        p99Ms: s.load.latency.p99Us / 1000,
        p99SendMs: s.load.serviceLatency === undefined ? undefined : s.load.serviceLatency.p99Us / 1000,
        gcMaxMs: s.bridgeGc?.maxPauseMs,
        over5: s.bridgeGc?.pausesOver5ms,
        scavenges: s.bridgeGc?.scavenges,
        majors: s.bridgeGc?.majors,
        promotedKbPerCall:
          s.bridgeGc?.promotedBytesPerCall === undefined ? undefined : s.bridgeGc.promotedBytesPerCall / 1000,
        cpuPer1000: s.bridge?.cpuSecondsPer1000,
        rssPeakMb: s.bridge?.rssPeakBytes === undefined ? undefined : s.bridge.rssPeakBytes / 1024 ** 2,
        otherCores: s.machine?.otherCores,
        nvp: tracing ? windowNvp(s.id) : undefined,
      });
    }
  });
}

const f = (value: number | undefined, digits: number): string =>
  value === undefined || Number.isNaN(value) ? "–" : value.toFixed(digits);
const median = (values: readonly (number | undefined)[]): number | undefined => {
  const sorted = values.filter((v): v is number => v !== undefined && !Number.isNaN(v)).sort((a, b) => a - b);
  if (sorted.length === 0) return undefined;
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};
const table = (header: readonly string[], body: readonly (readonly string[])[]): string =>
  [header, header.map((_, i) => (i < 3 ? "---" : "---:")), ...body]
    .map((r) => `| ${r.join(" | ")} |`)
    .join("\n");
/** V8's view of one kind: count / mean pause / longest, and its top main-thread phases' means. */
const nvpCell = (s: NvpSummary | undefined): string => {
  if (s === undefined) return "–";
  const top = Object.entries(s.phasesMs)
    .filter(([k]) => !k.includes("."))
    .sort((a, b) => b[1] - a[1])
    .slice(0, 3)
    .map(([k, ms]) => `${k} ${f(ms / s.count, 1)}`)
    .join(", ");
  return `${s.count} / ${f(s.pauseTotalMs / s.count, 1)} / ${f(s.pauseMaxMs, 1)} (${top})`;
};

/** Both tables' columns: per run (`third` "round") and medians over the rounds ("runs"). */
const header = (third: string, v8: readonly [string, string]): string[] => [
  "scenario",
  "bridge flags",
  third,
  "p99 (ms)",
  "p99 from send",
  "longest GC (ms)",
  "GC pauses > 5 ms",
  "young / full GCs",
  "promoted KB / call",
  "CPU s / 1000",
  "RSS peak (MB)",
  "other load (cores)",
  ...(tracing ? v8 : []),
];

const out: string[] = [];
out.push(
  `${rounds} round(s), the flag sets taking turns; BENCH_ONLY=${only}; load average (1 min) at each run's start ${loadAverages.map((l) => l.toFixed(1)).join(", ")}`,
  "",
);
out.push(
  table(
    header("round", ["V8 scavenges: n / mean / max ms (phases)", "V8 mark-compacts"]),
    [...rows]
      .sort(
        (a, b) => a.scenario.localeCompare(b.scenario) || a.flags.localeCompare(b.flags) || a.round - b.round,
      )
      .map((r) => [
        r.scenario,
        r.flags === "" ? "(defaults)" : `\`${r.flags}\``,
        String(r.round),
        f(r.p99Ms, 2),
        f(r.p99SendMs, 2),
        f(r.gcMaxMs, 1),
        f(r.over5, 0),
        `${f(r.scavenges, 0)} / ${f(r.majors, 0)}`,
        f(r.promotedKbPerCall, 2),
        f(r.cpuPer1000, 3),
        f(r.rssPeakMb, 0),
        f(r.otherCores, 2),
        ...(tracing ? [nvpCell(r.nvp?.s), nvpCell(r.nvp?.mc)] : []),
      ]),
  ),
  "",
  "Medians over the rounds:",
  "",
);
const scenarios = [...new Set(rows.map((r) => r.scenario))].sort();
const body: string[][] = [];
for (const scenario of scenarios) {
  for (const flags of variants) {
    const mine = rows.filter((r) => r.scenario === scenario && r.flags === flags);
    const m = (pick: (r: Row) => number | undefined, digits: number): string =>
      f(median(mine.map(pick)), digits);
    body.push([
      scenario,
      flags === "" ? "(defaults)" : `\`${flags}\``,
      String(mine.length),
      m((r) => r.p99Ms, 2),
      m((r) => r.p99SendMs, 2),
      m((r) => r.gcMaxMs, 1),
      m((r) => r.over5, 0),
      `${m((r) => r.scavenges, 0)} / ${m((r) => r.majors, 0)}`,
      m((r) => r.promotedKbPerCall, 2),
      m((r) => r.cpuPer1000, 3),
      m((r) => r.rssPeakMb, 0),
      m((r) => r.otherCores, 2),
      ...(tracing
        ? [
            m((r) => (r.nvp?.s === undefined ? undefined : r.nvp.s.pauseTotalMs / r.nvp.s.count), 2),
            m((r) => (r.nvp?.mc === undefined ? undefined : r.nvp.mc.pauseTotalMs / r.nvp.mc.count), 2),
          ]
        : []),
    ]);
  }
}
out.push(table(header("runs", ["V8 mean scavenge (ms)", "V8 mean mark-compact pause (ms)"]), body), "");
process.stdout.write(`${out.join("\n")}\n`);
if (failures.length > 0) {
  process.stderr.write(`\nflag-rounds: runs that failed:\n${failures.map((x) => `  - ${x}`).join("\n")}\n`);
  process.exitCode = 1;
}
