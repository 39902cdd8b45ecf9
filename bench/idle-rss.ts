/**
 * The idle bridge's memory with the orders example (the `idle` row of `npm run bench`, or
 * on its own: `node dist/bench/idle-rss.js [runs]`). Starts a nats-server of its own, then
 * `sessionbridge start` as `npm start` does (examples/orders/sessionbridge.yaml: gRPC, HTTP
 * and NATS listeners, SQLite store, the three processes' locations) on random ports and a
 * fresh store, and reads /proc/<pid>/status once a second until the resident set has held
 * still for SETTLED_SAMPLES seconds: V8 shrinks its heap some seconds after start-up, so
 * the first figures are start-up's, not the idle bridge's. The processes themselves are
 * not started: an idle bridge has nothing to say to them.
 *
 * It reports the settled RSS split into anonymous memory (heaps, stacks, the workers) and
 * file pages (the node binary and native modules as far as they were touched), each run,
 * and the median of the runs. BENCH_BRIDGE_NODE_ARGS are passed as NODE_OPTIONS, as a user
 * would set them.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { setTimeout as sleep } from "node:timers/promises";
import { pathToFileURL } from "node:url";
import { parse, stringify } from "yaml";
import { repoRoot } from "./bench-paths.js";
import { installChildCleanup } from "./children.js";
import { startNatsServer } from "./nats-bench.js";

/**
 * The bridge gives memory back after 10 s without calls (cli/idle-memory.ts) and V8's
 * memory reducer may shrink the heap later still: nothing before MIN_WAIT_MS counts as idle.
 */
const MIN_WAIT_MS = 30_000;
/** Seconds the RSS must then stay within SETTLED_BYTES for the bridge to count as idle. */
const SETTLED_SAMPLES = 10;
const SETTLED_BYTES = 512 * 1024;
/** Give up waiting for it to settle after this long (the last figure is reported, flagged). */
const MAX_WAIT_MS = 90_000;
const READY_TIMEOUT_MS = 60_000;

export interface IdleRssRun {
  readonly rssBytes: number;
  readonly anonBytes: number;
  readonly fileBytes: number;
  /** The first figure after "sessionbridge ready", before V8 shrank anything. */
  readonly atReadyBytes: number;
  /** Seconds from "ready" to the figure. */
  readonly waitedSeconds: number;
  /** Seconds from "ready" to the bridge's "idle memory reduced" line, if it logged one. */
  readonly reducedAfterSeconds: number | undefined;
  readonly settled: boolean;
  readonly threads: number;
}

export interface IdleRssResult {
  readonly runs: readonly IdleRssRun[];
  /** Medians of the runs. */
  readonly rssBytes: number;
  readonly anonBytes: number;
  readonly fileBytes: number;
  readonly nodeOptions: string;
}

function status(pid: number): { rss: number; anon: number; file: number; threads: number } {
  const text = readFileSync(`/proc/${pid}/status`, "utf8");
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, "m").exec(text)?.[1] ?? 0);
  return {
    rss: field("VmRSS") * 1024,
    anon: field("RssAnon") * 1024,
    file: field("RssFile") * 1024,
    threads: field("Threads"),
  };
}

/** The example's configuration with its addresses on random ports and a fresh SQLite store. */
function exampleConfig(dir: string, natsUrl: string): string {
  const root = repoRoot();
  const source = path.join(root, "examples/orders/sessionbridge.yaml");
  const config = parse(readFileSync(source, "utf8")) as {
    contracts: { importPaths: string[] };
    listeners: { http: string; nats: { url: string } };
    store?: string;
  };
  config.contracts.importPaths = config.contracts.importPaths.map((p) =>
    path.resolve(path.dirname(source), p),
  );
  config.listeners.http = "127.0.0.1:0";
  config.listeners.nats.url = natsUrl;
  config.store = `sqlite:${path.join(dir, "sessions.db")}`;
  const file = path.join(dir, "sessionbridge.yaml");
  writeFileSync(file, stringify(config));
  return file;
}

async function measureOnce(natsUrl: string, nodeOptions: string): Promise<IdleRssRun> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "sb-bench-idle-"));
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (nodeOptions === "") delete env.NODE_OPTIONS;
  else env.NODE_OPTIONS = nodeOptions;
  const child = spawn(
    process.execPath,
    [
      path.join(repoRoot(), "dist/cli/main.js"),
      "start",
      "--config",
      exampleConfig(dir, natsUrl),
      "--grpc",
      "127.0.0.1:0",
    ],
    { cwd: dir, env, stdio: ["ignore", "pipe", "pipe"] },
  );
  const kill = (): void => {
    child.kill("SIGKILL");
  };
  process.once("exit", kill);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  let readyAt = 0;
  let reducedAt: number | undefined;
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error("the bridge was not ready in time")), READY_TIMEOUT_MS);
      const lines = createInterface({ input: child.stdout });
      lines.on("line", (line) => {
        if (line.includes('"msg":"sessionbridge ready"')) {
          clearTimeout(timer);
          readyAt = performance.now();
          resolve();
        } else if (line.includes('"msg":"idle memory reduced"')) {
          reducedAt ??= performance.now();
        }
      });
      child.once("exit", (code, signal) => {
        clearTimeout(timer);
        reject(new Error(`the bridge exited (${signal ?? `code ${code}`}): ${stderr}`));
      });
    });
    const pid = child.pid as number;
    const start = performance.now();
    const atReady = status(pid).rss;
    const window: number[] = [];
    let last = status(pid);
    for (;;) {
      await sleep(1000);
      last = status(pid);
      window.push(last.rss);
      if (window.length > SETTLED_SAMPLES) window.shift();
      const waited = performance.now() - start;
      const settled =
        waited >= MIN_WAIT_MS &&
        window.length === SETTLED_SAMPLES &&
        Math.max(...window) - Math.min(...window) <= SETTLED_BYTES;
      if (settled || waited >= MAX_WAIT_MS) {
        return {
          rssBytes: last.rss,
          anonBytes: last.anon,
          fileBytes: last.file,
          atReadyBytes: atReady,
          waitedSeconds: Math.round(waited / 1000),
          reducedAfterSeconds: reducedAt === undefined ? undefined : Math.round((reducedAt - readyAt) / 1000),
          settled,
          threads: last.threads,
        };
      }
    }
  } finally {
    process.off("exit", kill);
    child.kill("SIGTERM");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  }
}

const median = (values: readonly number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1
    ? (sorted[mid] as number)
    : ((sorted[mid - 1] as number) + (sorted[mid] as number)) / 2;
};

/** `runs` idle bridges, one after another, on one nats-server. */
export async function measureIdleRss(runs: number): Promise<IdleRssResult> {
  const nodeOptions = process.env.BENCH_BRIDGE_NODE_ARGS ?? "";
  const nats = await startNatsServer();
  try {
    const results: IdleRssRun[] = [];
    for (let i = 0; i < runs; i++) results.push(await measureOnce(nats.url, nodeOptions));
    return {
      runs: results,
      rssBytes: median(results.map((r) => r.rssBytes)),
      anonBytes: median(results.map((r) => r.anonBytes)),
      fileBytes: median(results.map((r) => r.fileBytes)),
      nodeOptions,
    };
  } finally {
    await nats.stop();
  }
}

const mb = (bytes: number): string => (bytes / 1024 ** 2).toFixed(1);

/** A markdown table of the runs. */
export function renderIdleRss(result: IdleRssResult): string {
  const rows = result.runs.map(
    (r, i) =>
      `| ${i + 1} | ${mb(r.rssBytes)} | ${mb(r.anonBytes)} | ${mb(r.fileBytes)} | ${mb(r.atReadyBytes)} | ${r.reducedAfterSeconds === undefined ? "no" : `${r.reducedAfterSeconds} s`} | ${r.waitedSeconds} s${r.settled ? "" : " (not settled)"} | ${r.threads} |`,
  );
  return [
    "| run | idle RSS MB | anonymous MB | file pages MB | at ready MB | idle reduction after | read after | threads |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
    `| median | ${mb(result.rssBytes)} | ${mb(result.anonBytes)} | ${mb(result.fileBytes)} | | | | |`,
  ].join("\n");
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  installChildCleanup();
  const runs = Number(process.argv[2] ?? 2);
  const result = await measureIdleRss(runs);
  process.stdout.write(
    `idle bridge, orders example (${result.nodeOptions === "" ? "no NODE_OPTIONS" : `NODE_OPTIONS=${result.nodeOptions}`})\n\n${renderIdleRss(result)}\n`,
  );
}
