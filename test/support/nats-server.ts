import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { repoRoot } from "./repo-root.js";

export const NATS_SERVER_BIN = path.join(repoRoot(), ".tools/bin/nats-server");
export const NATS_CLI_BIN = path.join(repoRoot(), ".tools/bin/nats");

export interface NatsServerOptions {
  /** Enables JetStream with its store in the fixture's own directory. */
  readonly jetstream?: boolean;
  /** Extra lines of nats-server configuration (authorization, tls, …). */
  readonly extraConfig?: string;
}

/** A real nats-server on a random loopback port, for one test suite. */
export interface NatsServerFixture {
  /** nats://127.0.0.1:PORT */
  readonly url: string;
  readonly port: number;
  /** The fixture's scratch directory, removed on stop. */
  readonly dir: string;
  stop(): Promise<void>;
}

/**
 * Starts nats-server (installed by scripts/install-tools.sh) with `port: -1`, so the
 * server picks a free port and writes it to its ports file; never port 4222, never a
 * server outside the test. stop() kills it and removes its directory.
 */
export async function startNatsServer(options: NatsServerOptions = {}): Promise<NatsServerFixture> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "sb-nats-"));
  const lines = ["listen: 127.0.0.1:-1", `ports_file_dir: ${JSON.stringify(dir)}`];
  if (options.jetstream === true) {
    lines.push(`jetstream { store_dir: ${JSON.stringify(path.join(dir, "js"))} }`);
  }
  if (options.extraConfig !== undefined) lines.push(options.extraConfig);
  const configFile = path.join(dir, "nats.conf");
  writeFileSync(configFile, `${lines.join("\n")}\n`);
  const child = spawn(NATS_SERVER_BIN, ["-c", configFile], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4096);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.once("error", () => undefined);
  try {
    const url = await waitForPorts(child, dir, () => stderr);
    const port = Number(new URL(url).port);
    return {
      url,
      port,
      dir,
      async stop() {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
        await exited;
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    child.kill("SIGKILL");
    await exited;
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** Reads the client URL from the ports file nats-server writes once it listens. */
async function waitForPorts(child: ChildProcess, dir: string, stderr: () => string): Promise<string> {
  for (let attempt = 0; attempt < 600; attempt++) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`nats-server exited: ${stderr()}`);
    }
    const file = readdirSync(dir).find((name) => name.endsWith(".ports"));
    if (file !== undefined) {
      try {
        const ports = JSON.parse(readFileSync(path.join(dir, file), "utf8")) as { nats?: string[] };
        const url = ports.nats?.[0];
        if (url !== undefined) return url;
      } catch {
        // Written but not complete yet: read it again.
      }
    }
    await sleep(50);
  }
  throw new Error(`nats-server wrote no ports file: ${stderr()}`);
}
