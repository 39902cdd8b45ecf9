import { CaseExecution, CaseSkip, CheckFailure } from "./case-executor.js";
import type { ConformanceCase, Feature, Mode, Rule } from "./case-schema.js";
import { type Environment, endpointEnvironment, startEnvironment } from "./environment.js";
import { TRANSPORTS, type TransportName } from "./lab-wire.js";
import { type NatsServerProcess, startNatsServerProcess } from "./nats-server-process.js";
import {
  type CaseResult,
  type Permutation,
  permutationKey,
  type RunReport,
  type RunSummary,
} from "./run-result.js";
import type { KnownFailing, TargetFile } from "./target-file.js";

export interface RunOptions {
  readonly root: string;
  readonly target: TargetFile;
  readonly cases: readonly ConformanceCase[];
  readonly knownFailing: KnownFailing;
  readonly mode: Mode | "all";
  readonly inbound?: readonly TransportName[];
  readonly outbound?: readonly TransportName[];
  /** Only case ids matching this glob (`*` within a segment, `**` across). */
  readonly casesGlob?: string;
  /** A count (`40`) or a fraction (`0.25`) of the planned runs, drawn with `seed`. */
  readonly sample?: string;
  readonly seed: number;
  readonly parallel: number;
  /** The time scale of expiry cases (ServiceSettings.time_scale). */
  readonly timeScale: number;
  readonly natsServerBinary: string;
  /** A running service to test directly instead of starting the target's command. */
  readonly endpoint?: URL;
  /** Longest a single case may take. */
  readonly caseTimeoutMs?: number;
  readonly onResult?: (result: CaseResult, done: number, total: number) => void;
  readonly onPlan?: (total: number) => void;
}

interface WorkItem {
  readonly testCase: ConformanceCase;
  readonly permutation: Permutation;
  readonly scaled: boolean;
}

/** Every permutation the target and the filters allow: direct per transport, bridged per pair. */
export function permutationsOf(
  options: Pick<RunOptions, "target" | "mode" | "inbound" | "outbound">,
): Permutation[] {
  const served = options.target.transports;
  const inbound = options.inbound ?? TRANSPORTS;
  const outbound = options.outbound ?? TRANSPORTS;
  const out: Permutation[] = [];
  if (options.mode !== "bridged") {
    for (const t of served) if (inbound.includes(t)) out.push({ mode: "direct", inbound: t, outbound: "-" });
  }
  if (options.mode !== "direct") {
    for (const o of served) {
      if (!outbound.includes(o)) continue;
      for (const i of TRANSPORTS)
        if (inbound.includes(i)) out.push({ mode: "bridged", inbound: i, outbound: o });
    }
  }
  return out;
}

export async function runConformance(options: RunOptions): Promise<RunReport> {
  const started = Date.now();
  const permutations = permutationsOf(options);
  const features = new Set<Feature>(options.target.features);
  const glob = options.casesGlob === undefined ? undefined : globToRegExp(options.casesGlob);
  const selected = options.cases.filter((c) => glob === undefined || glob.test(c.id));
  const results: CaseResult[] = [];
  const planned: WorkItem[] = [];
  const skip = (testCase: ConformanceCase, permutation: Permutation, reason: string) =>
    results.push(resultOf(testCase, permutation, { status: "skip", skipReason: reason }));
  for (const testCase of selected) {
    for (const permutation of permutations) {
      if (!testCase.resolvedModes.includes(permutation.mode)) continue;
      const missing = testCase.requires.filter((f) => !features.has(f));
      if (missing.length > 0) {
        skip(testCase, permutation, `the target does not declare ${missing.join(", ")}`);
        continue;
      }
      const present = testCase.requires_absent.filter((f) => features.has(f));
      if (present.length > 0) continue; // an absence probe for a feature the target has: not applicable
      planned.push({ testCase, permutation, scaled: testCase.requires.includes("expiry") });
    }
  }
  const chosen = sampleOf(planned, options.sample, options.seed);
  for (const item of planned) {
    if (!chosen.has(item)) {
      skip(
        item.testCase,
        item.permutation,
        `not sampled (--sample ${options.sample ?? ""} --seed ${options.seed})`,
      );
    }
  }
  const total = results.length + chosen.size;
  options.onPlan?.(total);
  let done = 0;
  const record = (result: CaseResult) => {
    const listed = options.knownFailing.has(result.caseId, permutationKey(result.permutation));
    const final: CaseResult =
      listed && result.status === "fail"
        ? { ...result, status: "known-failure" }
        : listed && result.status === "pass"
          ? {
              ...result,
              status: "stale",
              failure: "listed as known-failing but passed: remove it from the list",
            }
          : result;
    results.push(final);
    done++;
    options.onResult?.(final, done, total);
  };
  for (const result of [...results]) {
    done++;
    options.onResult?.(result, done, total);
  }
  const needsNats =
    [...chosen].some((w) => w.permutation.inbound === "nats" || w.permutation.outbound === "nats") ||
    options.target.transports.includes("nats");
  let nats: NatsServerProcess | undefined;
  try {
    if (needsNats && chosen.size > 0 && options.endpoint === undefined)
      nats = await startNatsServerProcess(options.natsServerBinary);
    // One environment per (mode, outbound, time scale); the inbound transports share it.
    const groups = new Map<string, WorkItem[]>();
    for (const item of planned.filter((w) => chosen.has(w))) {
      const key = `${item.permutation.mode}|${item.permutation.outbound}|${item.scaled}`;
      groups.set(key, [...(groups.get(key) ?? []), item]);
    }
    let tag = 0;
    for (const items of groups.values()) {
      const first = items[0];
      if (first === undefined) continue;
      let env: Environment;
      try {
        const spec = {
          root: options.root,
          command: options.target.command,
          mode: first.permutation.mode,
          outbound: first.permutation.outbound === "-" ? undefined : first.permutation.outbound,
          serviceTransports: options.target.transports.filter((t) => t !== "nats" || nats !== undefined),
          timeScale: first.scaled ? options.timeScale : 1,
          natsUrl: nats?.url,
          tag: `${process.pid}-${tag++}`,
        };
        env =
          options.endpoint === undefined
            ? await startEnvironment(spec)
            : endpointEnvironment(spec, options.endpoint);
      } catch (error) {
        for (const item of items) {
          record(
            resultOf(item.testCase, item.permutation, {
              status: "fail",
              blamed: item.testCase.rules,
              failure: `the environment did not start: ${error instanceof Error ? error.message : String(error)}`,
            }),
          );
        }
        continue;
      }
      try {
        const shared = items.filter((w) => !w.testCase.exclusive);
        const alone = items.filter((w) => w.testCase.exclusive);
        await runPool(shared, options.parallel, async (item) => record(await runOne(item, env, options)));
        for (const item of alone) record(await runOne(item, env, options));
      } finally {
        await env.close();
      }
    }
  } finally {
    await nats?.stop();
  }
  return {
    summary: summarize(options, permutations, selected.length, results, Date.now() - started),
    results,
  };
}

async function runOne(item: WorkItem, env: Environment, options: RunOptions): Promise<CaseResult> {
  const started = Date.now();
  const execution = new CaseExecution(item.testCase, env, item.permutation, {
    natsStreams: options.target.features.includes("nats_streams"),
  });
  const limit = options.caseTimeoutMs ?? 120_000;
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      execution.run(),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () => reject(new CheckFailure(item.testCase.rules, `the case did not finish in ${limit} ms`)),
          limit,
        );
      }),
    ]);
    return resultOf(item.testCase, item.permutation, {
      status: "pass",
      transcript: execution.transcript,
      started,
    });
  } catch (error) {
    if (error instanceof CaseSkip) {
      return resultOf(item.testCase, item.permutation, {
        status: "skip",
        skipReason: error.message,
        started,
      });
    }
    const blamed = error instanceof CheckFailure ? error.rules : item.testCase.rules;
    const message = error instanceof Error ? error.message : String(error);
    return resultOf(item.testCase, item.permutation, {
      status: "fail",
      blamed,
      failure: error instanceof CheckFailure ? message : `${message}\n${env.logs()}`,
      transcript: execution.transcript,
      started,
    });
  } finally {
    clearTimeout(timer);
  }
}

function resultOf(
  testCase: ConformanceCase,
  permutation: Permutation,
  outcome: {
    status: CaseResult["status"];
    blamed?: readonly Rule[];
    failure?: string;
    skipReason?: string;
    transcript?: CaseResult["transcript"];
    started?: number;
  },
): CaseResult {
  return {
    caseId: testCase.id,
    description: testCase.description,
    side: testCase.side,
    permutation,
    status: outcome.status,
    blamed: outcome.blamed ?? [],
    ...(outcome.failure === undefined ? {} : { failure: outcome.failure }),
    ...(outcome.skipReason === undefined ? {} : { skipReason: outcome.skipReason }),
    transcript: outcome.transcript ?? [],
    durationMs: outcome.started === undefined ? 0 : Date.now() - outcome.started,
  };
}

async function runPool<T>(
  items: readonly T[],
  width: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  const lanes = Array.from({ length: Math.max(1, Math.min(width, items.length)) }, async () => {
    while (next < items.length) {
      const item = items[next++] as T;
      await work(item);
    }
  });
  await Promise.all(lanes);
}

/** A seeded shuffle (mulberry32) so a CI sample is the same every run with the same seed. */
function sampleOf<T>(items: readonly T[], sample: string | undefined, seed: number): Set<T> {
  if (sample === undefined) return new Set(items);
  const value = Number(sample);
  if (!Number.isFinite(value) || value <= 0)
    throw new Error(`--sample must be a count or a fraction in (0, 1], got ${sample}`);
  const count =
    value <= 1 && sample.includes(".")
      ? Math.ceil(items.length * value)
      : Math.min(items.length, Math.floor(value));
  let state = seed >>> 0;
  const random = () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const order = [...items];
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j] as T, order[i] as T];
  }
  return new Set(order.slice(0, count));
}

export function globToRegExp(glob: string): RegExp {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i] ?? "";
    if (c === "*" && glob[i + 1] === "*") {
      out += ".*";
      i++;
    } else if (c === "*") out += "[^/]*";
    else if (c === "?") out += "[^/]";
    else out += c.replace(/[.+^${}()|[\]\\]/g, "\\$&");
  }
  return new RegExp(`^${out}$`);
}

function summarize(
  options: RunOptions,
  permutations: readonly Permutation[],
  cases: number,
  results: readonly CaseResult[],
  durationMs: number,
): RunSummary {
  const count = (s: CaseResult["status"]) => results.filter((r) => r.status === s).length;
  const skipReasons: Record<string, number> = {};
  for (const r of results)
    if (r.status === "skip") skipReasons[r.skipReason ?? "?"] = (skipReasons[r.skipReason ?? "?"] ?? 0) + 1;
  const blamed = [...new Set(results.filter((r) => r.status === "fail").flatMap((r) => r.blamed))].sort(
    (a, b) => Number(a.slice(1)) - Number(b.slice(1)),
  );
  const failed = count("fail");
  const stale = count("stale");
  const target = options.target;
  let ok: boolean;
  let verdict: string;
  if (target.expect === "pass") {
    ok = failed === 0 && stale === 0;
    verdict = ok ? "every required case passed" : `${failed} failed, ${stale} stale known-failing entries`;
  } else {
    const want = [...target.breaks].sort();
    const exact = failed > 0 && blamed.length === want.length && blamed.every((r) => want.includes(r));
    ok = exact && stale === 0;
    verdict = ok
      ? `failed as expected, blaming exactly ${want.join(", ")}`
      : failed === 0
        ? `expected failures blaming ${want.join(", ")}, but nothing failed`
        : `expected failures blaming exactly ${want.join(", ")}, got ${blamed.join(", ")}`;
  }
  return {
    target: target.name,
    expect: target.expect,
    breaks: target.breaks,
    cases,
    permutations: permutations.map(permutationKey),
    total: results.length,
    passed: count("pass"),
    failed,
    skipped: count("skip"),
    knownFailures: count("known-failure"),
    stale,
    skipReasons,
    blamedRules: blamed,
    durationMs,
    ok,
    verdict,
    seed: options.seed,
    sample: options.sample,
  };
}
