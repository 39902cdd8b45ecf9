/**
 * The benchmark (npm run bench): the direct path and the bridged paths (memory and SQLite
 * stores) at a fixed rate and unthrottled, then routing at scale. Prints markdown tables,
 * writes bench/results/latest.{json,md,svg}, and exits non-zero, naming the scenario, when
 * one had more than 0.1% errors or could not hold its fixed rate. See bench-settings.ts for
 * the BENCH_* variables.
 */
import { startEcho, startGoEcho } from "./bench-processes.js";
import { type BenchResults, checkTargets, compare, disturbance } from "./bench-results.js";
import { benchSettings } from "./bench-settings.js";
import { installChildCleanup } from "./children.js";
import { assessDrift, driftWarnings, type SpeedSample } from "./drift.js";
import { DRIFT_REFERENCES, driftRows, NATS_GROUP } from "./drift-rows.js";
import { startGoConnectEcho } from "./http-rows.js";
import { type IdleRssResult, measureIdleRss } from "./idle-rss.js";
import { machineInfo } from "./machine-info.js";
import { probeSpeed } from "./machine-speed.js";
import { type NatsBenchResult, runNatsBench } from "./nats-bench.js";
import { startNginx } from "./nginx-proxy.js";
import { renderMarkdown } from "./report-markdown.js";
import { writeResults } from "./results-files.js";
import { type RoutingE2eResult, routingProblems, runRoutingE2e } from "./routing-e2e.js";
import { type RoutingMicroResult, runRoutingMicro } from "./routing-micro.js";
import { MODES, PATHS, runScenario, type ScenarioResult, scenarioId, scenarioProblems } from "./scenarios.js";

installChildCleanup();
const startedAt = performance.now();
const settings = benchSettings();
const machine = machineInfo();
const wanted = (id: string): boolean =>
  settings.only === undefined || settings.only.some((o) => id.startsWith(o));
const progress = (text: string): void => {
  process.stderr.write(`bench: ${text}\n`);
};

const problems: string[] = [];
const warnings: string[] = [];
const scenarios: ScenarioResult[] = [];
let micro: RoutingMicroResult | undefined;
let e2e: RoutingE2eResult | undefined;
// The machine's speed at the start, before every row group and at the end (drift.ts).
const speeds: SpeedSample[] = [];
const probe = async (before: string): Promise<void> => {
  progress(`speed probe (before ${before})`);
  try {
    speeds.push(await probeSpeed(before, startedAt));
  } catch (error) {
    warnings.push(`speed probe before ${before}: ${error instanceof Error ? error.message : String(error)}`);
  }
};

// In-process and first, while no child competes for the CPU.
if (wanted("routing/micro")) {
  await probe("routing/micro");
  progress("routing/micro");
  micro = runRoutingMicro([settings.routingSmall, settings.routingLarge], settings.payloadBytes);
}

const echo = await startGoEcho();
const nodeEcho = await startEcho();
const nginx = await startNginx(echo.address);
if (!("address" in nginx)) warnings.push(`nginx row skipped: ${nginx.skipped}`);
// The HTTP rows' connect-go echo, only when they run (it is built on first use).
const connectEcho = wanted("http") ? await startGoConnectEcho() : undefined;
const servers = { goEcho: echo, nodeEcho, nginx, connectEcho };
try {
  for (const p of PATHS) {
    if (p === "nginx" && !("address" in nginx)) continue;
    if (MODES.some((mode) => wanted(scenarioId(p, mode)))) await probe(p);
    for (const mode of MODES) {
      const id = scenarioId(p, mode);
      if (!wanted(id)) continue;
      if (p === "nginx" && !("address" in nginx)) continue;
      progress(id);
      try {
        const result = await runScenario(servers, p, mode, settings);
        scenarios.push(result);
        problems.push(...scenarioProblems(result));
        warnings.push(...disturbance(id, result.machine));
      } catch (error) {
        problems.push(`${id}: crashed: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  }
  if (wanted("routing/e2e")) {
    await probe("routing/e2e");
    progress(`routing/e2e (opening up to ${settings.routingLarge} sessions)`);
    try {
      e2e = await runRoutingE2e(echo, settings);
      problems.push(...routingProblems(e2e));
      warnings.push(...disturbance(`routing/e2e (${e2e.small.sessions} sessions)`, e2e.small.machine));
      warnings.push(...disturbance(`routing/e2e (${e2e.large.sessions} sessions)`, e2e.large.machine));
    } catch (error) {
      problems.push(`routing/e2e: crashed: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
} finally {
  await echo.stop();
  await nodeEcho.stop();
  await connectEcho?.stop();
  if ("address" in nginx) await nginx.stop();
}

// Last: the idle bridge needs a quiet machine more than a loaded one needs it.
let idle: IdleRssResult | undefined;
if (wanted("idle")) {
  await probe("idle");
  progress("idle (the orders example's bridge, idle RSS)");
  try {
    idle = await measureIdleRss(settings.idleRuns);
  } catch (error) {
    problems.push(`idle: crashed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

let nats: NatsBenchResult | undefined;
if (wanted("nats")) {
  await probe(NATS_GROUP);
  progress("nats (direct request-reply and through the bridge)");
  try {
    nats = await runNatsBench(settings);
    for (const p of nats.paths) {
      const errors = p.fixedRate.errors + p.closedLoop.errors;
      if (errors > 0) problems.push(`nats/${p.path}: ${errors} requests failed`);
    }
  } catch (error) {
    problems.push(`nats: crashed: ${error instanceof Error ? error.message : String(error)}`);
  }
}

await probe("end");

const comparisons = compare(scenarios);
const drift = assessDrift(driftRows(scenarios, nats), DRIFT_REFERENCES, speeds);
const drifted = driftWarnings(drift);
const results: BenchResults = {
  machine,
  settings,
  scenarios,
  comparisons,
  routing: { micro, e2e },
  nats,
  idle,
  targets: checkTargets(scenarios, comparisons, micro, e2e, idle),
  problems,
  warnings,
  drift,
  drifted,
  durationSeconds: (performance.now() - startedAt) / 1000,
};
const files = writeResults(results, settings.only !== undefined);
process.stdout.write(renderMarkdown(results));
progress(`wrote ${files.join(", ")}`);
if (warnings.length > 0) {
  process.stderr.write(`\nbench: disturbed windows:\n${warnings.map((w) => `  - ${w}`).join("\n")}\n`);
}
if (drifted.length > 0) {
  process.stderr.write(
    `\nbench: rows measured at another machine speed:\n${drifted.map((w) => `  - ${w}`).join("\n")}\n`,
  );
}
if (problems.length > 0) {
  process.stderr.write(`\nbench FAILED:\n${problems.map((p) => `  - ${p}`).join("\n")}\n`);
  process.exitCode = 1;
}
