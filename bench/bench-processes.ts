import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { benchModule } from "./bench-paths.js";
import { JsonLineChild } from "./children.js";
import { buildGoEcho } from "./go-echo.js";

/** A process serving gRPC on 127.0.0.1: an echo server, nginx, a bridge. */
export interface Peer {
  readonly pid: number;
  readonly address: string;
  stop(): Promise<void>;
}

export interface Server extends Peer {
  readonly child: JsonLineChild;
  /** A bridge on SQLite: its database file. */
  readonly storePath?: string;
}

/** Starts the echo process on a random port. */
export async function startEcho(): Promise<Server> {
  const child = new JsonLineChild("echo", benchModule("echo-process.js"), []);
  const ready = await child.next("ready");
  return { child, pid: child.pid, address: `127.0.0.1:${String(ready.port)}`, stop: () => child.stop() };
}

/** Starts the grpc-go echo server (built first when its sources changed) on a random port. */
export async function startGoEcho(): Promise<Server> {
  const child = new JsonLineChild("echo-go", buildGoEcho(), [], [], true);
  const ready = await child.next("ready");
  return { child, pid: child.pid, address: `127.0.0.1:${String(ready.port)}`, stop: () => child.stop() };
}

export type StoreKind = "memory" | "sqlite";

/** SQLite directories still in use; removed on exit too, so an interrupted run leaves none. */
const tempDirs = new Set<string>();
process.on("exit", () => {
  for (const dir of tempDirs) rmSync(dir, { recursive: true, force: true });
});

export interface BridgeOptions {
  /** Write a V8 CPU profile of the bridge into this directory when it stops. */
  readonly cpuProfileDir?: string;
  /** Run with --expose-gc, so memory queries report retained heap. */
  readonly exposeGc?: boolean;
  /** Another bridge config than bench/sessionbridge.yaml (the soak's). */
  readonly configFile?: string;
  /** Serve HTTP (Connect) too, and hand that port out as the bridge's address. */
  readonly httpListener?: boolean;
  /** The echo is a Connect server: reach it at http:// (the Connect outbound). */
  readonly connectOutbound?: boolean;
  /** Append what the child prints that is not JSON (V8's --trace-gc* lines) to this file. */
  readonly otherLinesFile?: string;
}

/**
 * BENCH_BRIDGE_NODE: another node binary for the bridge children only (bench/install-node.sh
 * installs one), so a newer Node's HTTP/2 and GC can be measured under the same generator,
 * echo server and run conditions while the project still builds for Node 20. better-sqlite3
 * is compiled for the Node that ran `npm ci`: SQLite rows fail on a Node of another ABI.
 */
export function bridgeNodeBinary(): string | undefined {
  const node = process.env.BENCH_BRIDGE_NODE?.trim();
  return node ? node : undefined;
}

/** The version of the Node the bridge children run on (`process.version` form). */
export function bridgeNodeVersion(): string {
  const node = bridgeNodeBinary();
  return node === undefined
    ? process.version
    : execFileSync(node, ["--version"], { encoding: "utf8" }).trim();
}

/** Starts a bridge child in front of the echo process, on a fresh store and a random port. */
export async function startBridge(
  echo: Peer,
  store: StoreKind,
  options: BridgeOptions = {},
): Promise<Server> {
  // A fresh SQLite file per bridge (synchronous=full, the default), removed afterwards.
  const dir = store === "sqlite" ? mkdtempSync(path.join(os.tmpdir(), "sb-bench-")) : undefined;
  if (dir !== undefined) tempDirs.add(dir);
  const storeArg = dir === undefined ? "memory" : `sqlite:${path.join(dir, "sessions.db")}`;
  const nodeArgs: string[] = [];
  if (options.cpuProfileDir !== undefined)
    nodeArgs.push("--cpu-prof", `--cpu-prof-dir=${options.cpuProfileDir}`);
  if (options.exposeGc === true) nodeArgs.push("--expose-gc");
  // BENCH_BRIDGE_NODE_ARGS: V8/Node flags for the bridge child only (e.g. heap sizing under
  // study), so two settings can be compared in the same run conditions.
  const extra = process.env.BENCH_BRIDGE_NODE_ARGS?.trim();
  if (extra) nodeArgs.push(...extra.split(/\s+/));
  const port =
    options.connectOutbound === true
      ? `http://${echo.address}`
      : echo.address.slice(echo.address.lastIndexOf(":") + 1);
  const args = options.configFile === undefined ? [port, storeArg] : [port, storeArg, options.configFile];
  if (options.httpListener === true) args.push("--http-listener");
  const node = bridgeNodeBinary();
  const child =
    node === undefined
      ? new JsonLineChild(`bridge-${store}`, benchModule("bridge-child.js"), args, nodeArgs)
      : new JsonLineChild(
          `bridge-${store}`,
          node,
          [...nodeArgs, benchModule("bridge-child.js"), ...args],
          [],
          true,
        );
  if (options.otherLinesFile !== undefined) child.keepOtherLines(options.otherLinesFile);
  const cleanup = (): void => {
    if (dir === undefined) return;
    rmSync(dir, { recursive: true, force: true });
    tempDirs.delete(dir);
  };
  try {
    const ready = await child.next("ready");
    return {
      child,
      pid: child.pid,
      address: String(ready.address),
      ...(dir === undefined ? {} : { storePath: path.join(dir, "sessions.db") }),
      stop: async () => {
        await child.stop();
        cleanup();
      },
    };
  } catch (error) {
    await child.stop(0);
    cleanup();
    throw error;
  }
}
