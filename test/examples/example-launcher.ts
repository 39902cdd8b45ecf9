import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { repoRoot } from "../support/repo-root.js";
import { sleep, waitFor } from "../support/wait.js";

/** The line npm start prints last once everything is ready. */
export const READY_LINE = "Ctrl-C stops them all.";

/** Where a launched example listens: free ports picked for this run, never the defaults. */
export interface ExampleAddresses {
  readonly grpc: string;
  readonly http: string;
  readonly natsPort: number;
  readonly orders: string;
  readonly inventory: string;
  readonly dataDir: string;
}

export interface LaunchedExample {
  readonly child: ChildProcess;
  readonly addresses: ExampleAddresses;
  /** Every line of its stdout and stderr so far. */
  readonly lines: string[];
  /** The pid a child reported in its ready line (`[orders] {"msg":"orders process ready",…}`). */
  pid(name: "orders" | "inventory" | "payments"): number;
  /** SIGTERM, waits for the exit (SIGKILL after `graceMs`), removes the data directory. */
  stop(graceMs?: number): Promise<void>;
}

/** A free loopback port: bound and released (the launcher binds it again at once). */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function pickAddresses(): Promise<ExampleAddresses> {
  const [grpc, http, natsPort, orders, inventory] = [
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
    await freePort(),
  ];
  return {
    grpc: `127.0.0.1:${grpc}`,
    http: `127.0.0.1:${http}`,
    natsPort: natsPort as number,
    orders: `127.0.0.1:${orders}`,
    inventory: `127.0.0.1:${inventory}`,
    dataDir: mkdtempSync(path.join(os.tmpdir(), "sb-example-")),
  };
}

/** The environment that moves npm start onto `a` (README, quick start). */
export function exampleEnv(a: ExampleAddresses): NodeJS.ProcessEnv {
  return {
    ...process.env,
    SB_EXAMPLE_GRPC: a.grpc,
    SB_EXAMPLE_HTTP: a.http,
    SB_EXAMPLE_NATS_PORT: String(a.natsPort),
    SB_EXAMPLE_ORDERS: a.orders,
    SB_EXAMPLE_INVENTORY: a.inventory,
    SB_EXAMPLE_DATA: a.dataDir,
  };
}

export function messageOf(line: string): string | undefined {
  try {
    return (JSON.parse(line.replace(/^\[\w+\] /, "")) as { msg?: string }).msg;
  } catch {
    return undefined;
  }
}

/**
 * Runs `npm start`'s script (dist/examples/orders/start.js) on free ports and waits until
 * it prints that everything is ready. The first run builds the Go and Python parts.
 */
export async function launchExample(readyWithinMs = 240_000): Promise<LaunchedExample> {
  const addresses = await pickAddresses();
  const child = spawn(process.execPath, ["dist/examples/orders/start.js"], {
    cwd: repoRoot(),
    env: exampleEnv(addresses),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (l) => lines.push(l));
  createInterface({ input: child.stderr as NodeJS.ReadableStream }).on("line", (l) => lines.push(l));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const launched: LaunchedExample = {
    child,
    addresses,
    lines,
    pid(name) {
      const ready = lines.find((l) => l.startsWith(`[${name}] `) && messageOf(l) === `${name} process ready`);
      if (ready === undefined) throw new Error(`${name} printed no ready line`);
      return (JSON.parse(ready.slice(name.length + 3)) as { pid: number }).pid;
    },
    async stop(graceMs = 20_000) {
      if (child.exitCode === null && child.signalCode === null) {
        child.kill("SIGTERM");
        await Promise.race([exited, sleep(graceMs)]);
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
      }
      await exited;
      rmSync(addresses.dataDir, { recursive: true, force: true });
    },
  };
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  try {
    await waitFor(() => gone || lines.includes(READY_LINE), readyWithinMs, "npm start ready");
    if (!lines.includes(READY_LINE)) throw new Error("npm start exited before it was ready");
  } catch (error) {
    await launched.stop();
    throw new Error(`${(error as Error).message}; output:\n${lines.join("\n")}`);
  }
  return launched;
}
