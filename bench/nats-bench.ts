import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { BinaryWriter } from "@bufbuild/protobuf/wire";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { benchModule, repoRoot } from "./bench-paths.js";
import type { BenchSettings } from "./bench-settings.js";
import { JsonLineChild } from "./children.js";
import { LatencyRecorder, type LatencySummary } from "./latency.js";
import { cpuSeconds } from "./proc-stats.js";

/** One path of the NATS rows: a fixed rate (latency from the scheduled send) and a closed loop. */
export interface NatsPathResult {
  /** "direct": client → nats-server → echo; "bridged": client → nats-server → bridge → nats-server → echo. */
  readonly path: "direct" | "bridged-memory";
  readonly fixedRate: {
    readonly ratePerSec: number;
    readonly ok: number;
    readonly errors: number;
    readonly latency: LatencySummary;
    /** CPU per 1000 answered requests over the fixed-rate run: the echo, and the client (the bench process). */
    readonly echoCpuSecondsPer1000?: number;
    readonly clientCpuSecondsPer1000?: number;
  };
  readonly closedLoop: {
    readonly concurrency: number;
    readonly ok: number;
    readonly errors: number;
    readonly throughputPerSec: number;
    readonly latency: LatencySummary;
  };
}

export interface NatsBenchResult {
  readonly payloadBytes: number;
  readonly measureSeconds: number;
  readonly paths: readonly NatsPathResult[];
}

/** Requests outstanding in the closed loop. */
const CONCURRENCY = 32;

/**
 * NATS request-reply straight to the echo process and through the bridge (NATS inbound,
 * nats:// outbound, memory store, every call in a session), on a nats-server of its own.
 */
export async function runNatsBench(settings: BenchSettings): Promise<NatsBenchResult> {
  const server = await startNatsServer();
  let echo: JsonLineChild | undefined;
  let bridge: JsonLineChild | undefined;
  let nc: NatsConnection | undefined;
  try {
    echo = new JsonLineChild("nats-echo", benchModule("nats-echo-process.js"), [server.url, "bench.echo"]);
    await echo.next("ready");
    const echoPid = echo.pid;
    bridge = new JsonLineChild("bridge-nats", benchModule("bridge-child.js"), [server.url, "memory"]);
    await bridge.next("ready");
    nc = await connect({ servers: server.url, name: "bench-nats-client" });
    const payload = new Uint8Array(settings.payloadBytes).fill(0x61);
    const keys = Array.from({ length: settings.sessions }, (_, i) => `nats-${i}`);
    const bodies = keys.map((key) =>
      new BinaryWriter().uint32(10).string(key).uint32(18).bytes(payload).finish(),
    );
    for (const body of bodies) await nc.request("sb.bench.v1.Echo.Open", body, { timeout: 10_000 });
    const paths: NatsPathResult[] = [];
    for (const [name, subject] of [
      ["direct", "bench.echo.Call"],
      ["bridged-memory", "sb.bench.v1.Echo.Call"],
    ] as const) {
      await closedLoop(nc, subject, bodies, settings.warmupSeconds);
      const echoBefore = cpuSeconds(echoPid);
      const clientBefore = cpuSeconds("self");
      const fixedRate = await fixedRateRun(nc, subject, bodies, settings.ratePerSec, settings.measureSeconds);
      const per1000 = (used: number): number =>
        fixedRate.ok === 0 ? Number.NaN : used / (fixedRate.ok / 1000);
      const loop = await closedLoop(nc, subject, bodies, settings.measureSeconds);
      paths.push({
        path: name,
        fixedRate: {
          ratePerSec: settings.ratePerSec,
          ...fixedRate,
          echoCpuSecondsPer1000: per1000(cpuSeconds(echoPid) - echoBefore),
          clientCpuSecondsPer1000: per1000(cpuSeconds("self") - clientBefore),
        },
        closedLoop: loop,
      });
    }
    return { payloadBytes: settings.payloadBytes, measureSeconds: settings.measureSeconds, paths };
  } finally {
    await nc?.close();
    await bridge?.stop();
    await echo?.stop();
    await server.stop();
  }
}

async function fixedRateRun(
  nc: NatsConnection,
  subject: string,
  bodies: readonly Uint8Array[],
  ratePerSec: number,
  seconds: number,
): Promise<{ ok: number; errors: number; latency: LatencySummary }> {
  const recorder = new LatencyRecorder();
  const total = Math.round(ratePerSec * seconds);
  const start = performance.now() + 20;
  const pending: Promise<void>[] = [];
  let ok = 0;
  let errors = 0;
  let sent = 0;
  while (sent < total) {
    const now = performance.now();
    while (sent < total && start + (sent * 1000) / ratePerSec <= now) {
      // Latency counts from when the request was due, not when it went out (no coordinated omission).
      const scheduled = start + (sent * 1000) / ratePerSec;
      const body = bodies[sent % bodies.length] as Uint8Array;
      pending.push(
        nc.request(subject, body, { timeout: 10_000 }).then(
          () => {
            ok += 1;
            recorder.recordMs(performance.now() - scheduled);
          },
          () => {
            errors += 1;
          },
        ),
      );
      sent += 1;
    }
    await sleep(1);
  }
  await Promise.all(pending);
  return { ok, errors, latency: recorder.summary() };
}

async function closedLoop(
  nc: NatsConnection,
  subject: string,
  bodies: readonly Uint8Array[],
  seconds: number,
): Promise<NatsPathResult["closedLoop"]> {
  const recorder = new LatencyRecorder();
  const until = performance.now() + seconds * 1000;
  let ok = 0;
  let errors = 0;
  const worker = async (index: number): Promise<void> => {
    let i = index;
    while (performance.now() < until) {
      const began = performance.now();
      try {
        await nc.request(subject, bodies[i % bodies.length] as Uint8Array, { timeout: 10_000 });
        ok += 1;
        recorder.recordMs(performance.now() - began);
      } catch {
        errors += 1;
      }
      i += CONCURRENCY;
    }
  };
  const began = performance.now();
  await Promise.all(Array.from({ length: CONCURRENCY }, (_, i) => worker(i)));
  const elapsed = (performance.now() - began) / 1000;
  return {
    concurrency: CONCURRENCY,
    ok,
    errors,
    throughputPerSec: Math.round(ok / elapsed),
    latency: recorder.summary(),
  };
}

/** nats-server from .tools/bin on a random loopback port (port -1), removed afterwards. */
export async function startNatsServer(): Promise<{ url: string; stop(): Promise<void> }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "sb-bench-nats-"));
  const config = path.join(dir, "nats.conf");
  writeFileSync(config, `listen: 127.0.0.1:-1\nports_file_dir: ${JSON.stringify(dir)}\n`);
  const child: ChildProcess = spawn(path.join(repoRoot(), ".tools/bin/nats-server"), ["-c", config], {
    stdio: "ignore",
  });
  const kill = (): void => {
    child.kill("SIGKILL");
  };
  process.once("exit", kill);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.once("error", () => undefined);
  const stop = async (): Promise<void> => {
    process.off("exit", kill);
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  for (let attempt = 0; attempt < 400; attempt++) {
    const file = readdirSync(dir).find((name) => name.endsWith(".ports"));
    if (file !== undefined) {
      try {
        const url = (JSON.parse(readFileSync(path.join(dir, file), "utf8")) as { nats?: string[] }).nats?.[0];
        if (url !== undefined) return { url, stop };
      } catch {
        // not complete yet
      }
    }
    if (child.exitCode !== null) break;
    await sleep(50);
  }
  await stop();
  throw new Error("nats-server did not start (run bash scripts/install-tools.sh)");
}
