import { spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import cliProgress from "cli-progress";
import { packageRoot } from "../bridge/util/package-root.js";
import { loadCases } from "../conformance/runner/case-loader.js";
import type { Mode } from "../conformance/runner/case-schema.js";
import type { TransportName } from "../conformance/runner/lab-wire.js";
import { writeReports } from "../conformance/runner/report-files.js";
import { type CaseResult, permutationKey } from "../conformance/runner/run-result.js";
import { runConformance } from "../conformance/runner/runner.js";
import {
  loadKnownFailing,
  loadTarget,
  parseKnownFailing,
  type TargetFile,
} from "../conformance/runner/target-file.js";
import { ExitCode } from "./exit-codes.js";

export interface ConformanceRunOptions {
  readonly target?: string[];
  readonly endpoint?: string;
  readonly mode: Mode | "all";
  readonly inbound?: TransportName[];
  readonly outbound?: TransportName[];
  readonly cases?: string;
  readonly casesDir?: string;
  readonly sample?: string;
  readonly seed: number;
  readonly parallel: number;
  readonly timeScale: number;
  readonly reportDir: string;
}

/** `sessionbridge conformance run`: every target in turn; exit 0 only when each run's verdict holds. */
export async function conformanceRun(
  options: ConformanceRunOptions,
  io: { out: NodeJS.WritableStream & { isTTY?: boolean }; err: NodeJS.WritableStream },
): Promise<number> {
  const root = packageRoot();
  // Ctrl-C ends the run through process exit, which kills every service and bridge it started.
  for (const signal of ["SIGINT", "SIGTERM"] as const) process.once(signal, () => process.exit(130));
  const cases = loadCases(options.casesDir ?? path.join(root, "conformance/cases"));
  const targets: { target: TargetFile; endpoint?: URL }[] = [];
  for (const file of options.target ?? []) targets.push({ target: loadTarget(file) });
  if (options.endpoint !== undefined) {
    const url = new URL(options.endpoint);
    const transport = url.protocol.replace(/:$/, "") as TransportName;
    if (!["grpc", "http", "nats"].includes(transport))
      throw new Error(`--endpoint: grpc://, http:// or nats:// expected`);
    targets.push({
      target: {
        name: "endpoint",
        language: "unknown",
        command: ["-"],
        transports: [transport],
        features: [],
        expect: "pass",
        breaks: [],
        file: "",
      },
      endpoint: url,
    });
  }
  if (targets.length === 0) throw new Error("give --target FILE or --endpoint URL");
  let exit: number = ExitCode.OK;
  for (const { target, endpoint } of targets) {
    if (endpoint === undefined) ensureBuilt(root, target, io.err);
    const bar =
      io.out.isTTY === true
        ? new cliProgress.SingleBar(
            {
              format: `${target.name} [{bar}] {value}/{total} {status}`,
              stream: io.out as NodeJS.WriteStream,
            },
            cliProgress.Presets.shades_classic,
          )
        : undefined;
    const report = await runConformance({
      root,
      target,
      cases,
      knownFailing: endpoint === undefined ? loadKnownFailing(root, target.name) : parseKnownFailing(""),
      mode: endpoint === undefined ? options.mode : "direct",
      ...(options.inbound === undefined ? {} : { inbound: options.inbound }),
      ...(options.outbound === undefined ? {} : { outbound: options.outbound }),
      ...(options.cases === undefined ? {} : { casesGlob: options.cases }),
      ...(options.sample === undefined ? {} : { sample: options.sample }),
      ...(endpoint === undefined ? {} : { endpoint }),
      seed: options.seed,
      parallel: options.parallel,
      timeScale: options.timeScale,
      natsServerBinary: path.join(root, ".tools/bin/nats-server"),
      onPlan: (total) => bar?.start(total, 0, { status: "" }),
      onResult: (result, done, total) => {
        if (bar !== undefined) bar.update(done, { status: `${result.status} ${result.caseId}` });
        else io.out.write(`${line(result)} (${done}/${total})\n`);
      },
    });
    bar?.stop();
    const paths = writeReports(options.reportDir, report);
    const s = report.summary;
    io.out.write(
      `${target.name}: ${s.ok ? "OK" : "FAILED"}: ${s.verdict}\n` +
        `  ${s.cases} cases, ${s.permutations.length} permutations, ${s.total} runs: ${s.passed} passed, ${s.failed} failed, ${s.skipped} skipped, ${s.knownFailures} known failures, ${s.stale} stale, in ${(s.durationMs / 1000).toFixed(1)} s\n`,
    );
    for (const [why, n] of Object.entries(s.skipReasons)) io.out.write(`  skipped ${n}: ${why}\n`);
    io.out.write(`  reports: ${paths.html}\n           ${paths.json}\n           ${paths.junit}\n`);
    if (!s.ok) exit = ExitCode.FAILURE;
  }
  return exit;
}

function line(r: CaseResult): string {
  const where = permutationKey(r.permutation);
  if (r.status === "fail")
    return `FAIL ${r.caseId} [${where}] ${r.blamed.join(",")}: ${r.failure?.split("\n")[0] ?? ""}`;
  if (r.status === "skip") return `skip ${r.caseId} [${where}]: ${r.skipReason ?? ""}`;
  return `${r.status} ${r.caseId} [${where}]`;
}

/** Runs the target's build script when its program is absent (conformance-common.md). */
function ensureBuilt(root: string, target: TargetFile, err: NodeJS.WritableStream): void {
  const program = target.command[0] ?? "";
  const local = program.includes("/") ? path.resolve(root, program) : undefined;
  const missing = local !== undefined && !existsSync(local);
  const script = target.command.slice(1).find((a) => a.endsWith(".js") || a.endsWith(".py"));
  const scriptMissing = script !== undefined && !existsSync(path.resolve(root, script));
  if ((!missing && !scriptMissing) || target.build === undefined) return;
  err.write(`building ${target.name}: ${target.build}\n`);
  const built = spawnSync("bash", [path.resolve(root, target.build)], {
    cwd: root,
    stdio: ["ignore", "inherit", "inherit"],
  });
  if (built.status !== 0) throw new Error(`${target.build} failed (${built.status ?? built.signal})`);
}
