import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { constants } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { parse, stringify } from "yaml";
import { packageRoot } from "../../bridge/util/package-root.js";
import { walkthroughHint } from "./walkthrough-hint.js";

/**
 * `npm start`: the orders example in three languages on three transports, behind the
 * bridge on its embedded defaults (gRPC 127.0.0.1:50051, SQLite at
 * .sessionbridge/sessions.db), each its own process:
 *
 * - nats-server on 127.0.0.1:4222 (pinned, built into .tools/bin by scripts/install-tools.sh);
 * - orders, TypeScript over gRPC on 127.0.0.1:50061 (orders-main.ts);
 * - inventory, Python over HTTP (Connect, JSON) on 127.0.0.1:50062 (python/inventory.py);
 * - payments, Go over NATS on payments.<Method> (go/*.go, nats.go);
 * - the bridge, with the HTTP listener on 127.0.0.1:8080 and the NATS listener on sb.*.
 *
 * It first builds what is missing (examples/orders/go/build.sh, python/build.sh; both
 * idempotent). Once everything is ready it prints what to try. Ctrl-C stops it all: the
 * bridge drains first (a second Ctrl-C is ignored, a third forces it), then the processes
 * stop, then nats-server, and npm start exits with the bridge's exit status.
 * `npm start -- --nats nats://HOST:PORT` uses that NATS server instead of starting one.
 *
 * The children run in their own process groups, so the terminal's Ctrl-C reaches only
 * this launcher, which forwards every signal to the bridge; the processes are stopped only
 * after the bridge has exited, because calls the bridge finishes while draining still
 * need them, and nats-server only after the processes, because payments answers over it.
 */
const root = packageRoot();
/**
 * The addresses: the documented defaults, or SB_EXAMPLE_* from the environment when those
 * ports are taken (the tests pick free ones). Any override makes the launcher write the
 * bridge's configuration with the new addresses into the data directory.
 */
const env = (name: string, fallback: string): string => process.env[name] || fallback;
const ORDERS_ADDRESS = env("SB_EXAMPLE_ORDERS", "127.0.0.1:50061");
const INVENTORY_ADDRESS = env("SB_EXAMPLE_INVENTORY", "127.0.0.1:50062");
const BRIDGE_ADDRESS = env("SB_EXAMPLE_GRPC", "127.0.0.1:50051");
const HTTP_ADDRESS = env("SB_EXAMPLE_HTTP", "127.0.0.1:8080");
const OWN_NATS_PORT = Number(env("SB_EXAMPLE_NATS_PORT", "4222"));
const DATA_DIR = env("SB_EXAMPLE_DATA", ".sessionbridge");
const CONFIG = "examples/orders/sessionbridge.yaml";
/** How long a process may take to stop on SIGTERM before it is killed. */
const STOP_GRACE_MS = 5000;
const TOOLS = path.join(root, ".tools");

const natsAt = process.argv.indexOf("--nats");
const EXTERNAL_NATS = natsAt === -1 ? undefined : process.argv[natsAt + 1];
if (natsAt !== -1 && (EXTERNAL_NATS === undefined || EXTERNAL_NATS.startsWith("-"))) {
  process.stderr.write("npm start: --nats needs a URL, e.g. npm start -- --nats nats://127.0.0.1:4222\n");
  process.exit(2);
}
const NATS_URL = EXTERNAL_NATS ?? `nats://127.0.0.1:${OWN_NATS_PORT}`;

/** The example's processes, in start order; nats-server is kept apart: it stops last. */
const processes: ChildProcess[] = [];
let natsServer: ChildProcess | undefined;
let bridge: ChildProcess | undefined;
let stopping = false;

interface Launch {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  /** The stream whose lines say when it is ready (nats-server logs to stderr). */
  readonly readyOn?: "stdout" | "stderr";
  readonly ready: (line: string) => boolean;
}

/** Starts a child, echoes its output prefixed with its name, and resolves once it is ready. */
function launch(spec: Launch): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const readyOn = spec.readyOn ?? "stdout";
    const child = spawn(spec.command, spec.args, {
      cwd: root,
      stdio: ["ignore", "pipe", readyOn === "stderr" ? "pipe" : "inherit"],
      detached: true,
    });
    if (spec.name === "nats") natsServer = child;
    else processes.push(child);
    let isReady = false;
    const echo = (stream: NodeJS.ReadableStream, out: NodeJS.WritableStream) =>
      createInterface({ input: stream }).on("line", (line) => {
        out.write(`[${spec.name}] ${line}\n`);
        if (!isReady && (readyOn === "stdout") === (out === process.stdout) && spec.ready(line)) {
          isReady = true;
          resolve(child);
        }
      });
    if (child.stdout !== null) echo(child.stdout, process.stdout);
    if (child.stderr !== null) echo(child.stderr, process.stderr);
    child.once("error", (error) => {
      if (!isReady) reject(new Error(`${spec.name} could not start: ${error.message}`));
    });
    child.once("exit", (code, signal) => {
      if (!isReady)
        reject(new Error(`${spec.name} exited before it was ready (${signal ?? `code ${code}`})`));
    });
  });
}

function running(child: ChildProcess | undefined): child is ChildProcess {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

function exited(child: ChildProcess): Promise<void> {
  if (!running(child)) return Promise.resolve();
  return new Promise((resolve) => child.once("exit", () => resolve()));
}

/** SIGTERM, then SIGKILL if it is still there after the grace period. */
async function stop(child: ChildProcess | undefined, signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  if (!running(child)) return;
  child.kill(signal);
  const timer = setTimeout(() => {
    if (running(child)) child.kill("SIGKILL");
  }, STOP_GRACE_MS);
  await exited(child);
  clearTimeout(timer);
}

/** Processes first (the newest first: the bridge, then what it calls), nats-server last. */
async function stopAll(signal: NodeJS.Signals = "SIGTERM"): Promise<void> {
  stopping = true;
  await Promise.all([...processes].reverse().map((child) => stop(child, signal)));
  await stop(natsServer, signal);
}

/** A child's exit status as a shell reports it: its code, or 128 + the signal's number. */
function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0));
}

// Registered before anything starts, so an early Ctrl-C never leaves a child behind.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    const forwarded = signal === "SIGHUP" ? "SIGTERM" : signal;
    // The bridge counts the signals itself: a second during its drain is ignored, a third forces it.
    if (running(bridge)) bridge.kill(forwarded);
    else if (!stopping) {
      process.exitCode = 1;
      void stopAll(forwarded);
    }
  });
}

const messageOf = (line: string): string | undefined => {
  try {
    return (JSON.parse(line) as { msg?: string }).msg;
  } catch {
    return undefined;
  }
};

/**
 * The bridge's configuration: examples/orders/sessionbridge.yaml as it is, or a copy in
 * the data directory with the overridden addresses (contracts found from there by an
 * absolute import path, sessions kept in the data directory).
 */
function bridgeConfig(): string {
  const overridden = Object.keys(process.env).some((k) => k.startsWith("SB_EXAMPLE_") && process.env[k]);
  if (!overridden) return CONFIG;
  const config = parse(readFileSync(path.join(root, CONFIG), "utf8")) as {
    contracts: { importPaths: string[] };
    processes: { name: string; location: string }[];
    listeners: { http: string };
    store?: string;
  };
  config.contracts.importPaths = config.contracts.importPaths.map((p) =>
    path.resolve(root, path.dirname(CONFIG), p),
  );
  for (const p of config.processes) {
    if (p.name === "orders") p.location = `grpc://${ORDERS_ADDRESS}`;
    if (p.name === "inventory") p.location = `http://${INVENTORY_ADDRESS}?codec=json`;
  }
  config.listeners.http = HTTP_ADDRESS;
  config.store = `sqlite:${path.resolve(root, DATA_DIR, "sessions.db")}`;
  mkdirSync(path.resolve(root, DATA_DIR), { recursive: true });
  const file = path.resolve(root, DATA_DIR, "sessionbridge.yaml");
  writeFileSync(file, stringify(config));
  return file;
}

/** Runs a build script (idempotent: it does nothing when its outputs are current). */
function build(script: string): void {
  const result = spawnSync("bash", [script], { cwd: root, stdio: ["ignore", "inherit", "inherit"] });
  if (result.status !== 0) throw new Error(`${script} failed (${result.signal ?? `code ${result.status}`})`);
}

try {
  if (EXTERNAL_NATS === undefined && !existsSync(path.join(TOOLS, "bin/nats-server"))) {
    build("scripts/install-tools.sh");
  }
  build("examples/orders/go/build.sh");
  build("examples/orders/python/build.sh");

  if (EXTERNAL_NATS === undefined) {
    await launch({
      name: "nats",
      command: path.join(TOOLS, "bin/nats-server"),
      args: ["-a", "127.0.0.1", "-p", String(OWN_NATS_PORT)],
      readyOn: "stderr",
      ready: (l) => l.includes("Server is ready"),
    });
  }
  await Promise.all([
    launch({
      name: "payments",
      command: path.join(TOOLS, "examples/bin/orders-payments"),
      args: ["-nats", NATS_URL, "-prefix", "payments", "-data", DATA_DIR],
      ready: (l) => messageOf(l) === "payments process ready",
    }),
    launch({
      name: "inventory",
      command: path.join(TOOLS, "examples/inventory-venv/bin/python"),
      args: [
        "examples/orders/python/inventory.py",
        "--listen",
        INVENTORY_ADDRESS,
        "--db",
        `${DATA_DIR}/inventory.db`,
      ],
      ready: (l) => messageOf(l) === "inventory process ready",
    }),
    launch({
      name: "orders",
      command: process.execPath,
      args: ["dist/examples/orders/orders-main.js", ORDERS_ADDRESS, `${DATA_DIR}/orders.db`],
      ready: (l) => messageOf(l) === "orders process ready",
    }),
  ]);
  const started = await launch({
    name: "bridge",
    command: process.execPath,
    args: [
      "dist/cli/main.js",
      "start",
      "--config",
      bridgeConfig(),
      "--grpc",
      BRIDGE_ADDRESS,
      "--nats",
      NATS_URL,
    ],
    ready: (l) => messageOf(l) === "sessionbridge ready",
  });
  bridge = started;
  const tool = (name: string) => (existsSync(path.join(TOOLS, "bin", name)) ? `.tools/bin/${name}` : name);
  process.stdout.write(
    walkthroughHint({
      grpcurl: tool("grpcurl"),
      nats: tool("nats"),
      bridgeAddress: BRIDGE_ADDRESS,
      httpAddress: HTTP_ADDRESS,
      natsUrl: NATS_URL,
      ordersAddress: ORDERS_ADDRESS,
      inventoryAddress: INVENTORY_ADDRESS,
    }),
  );
  const status = await new Promise<number>((resolve) =>
    started.once("exit", (code, signal) => resolve(exitStatus(code, signal))),
  );
  processes.splice(processes.indexOf(started), 1);
  await stopAll();
  process.exitCode = status;
} catch (error) {
  process.stderr.write(`npm start: ${error instanceof Error ? error.message : String(error)}\n`);
  await stopAll();
  process.exitCode = 1;
}
