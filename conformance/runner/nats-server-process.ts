import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { reapOnExit } from "./child-reaper.js";

export interface NatsServerProcess {
  readonly url: string;
  stop(): Promise<void>;
}

/**
 * A nats-server (installed into .tools/bin by scripts/install-tools.sh) on a port it picks
 * itself (`-1`), read back from its ports file: never 4222, never a server outside the run.
 */
export async function startNatsServerProcess(binary: string): Promise<NatsServerProcess> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "sb-conf-nats-"));
  const config = path.join(dir, "nats.conf");
  writeFileSync(config, `listen: 127.0.0.1:-1\nports_file_dir: ${JSON.stringify(dir)}\n`);
  const child = spawn(binary, ["-c", config], { stdio: ["ignore", "ignore", "pipe"] });
  reapOnExit(child);
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (c: string) => {
    stderr = (stderr + c).slice(-4096);
  });
  child.once("error", () => undefined);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  for (let attempt = 0; attempt < 600; attempt++) {
    if (child.exitCode !== null || child.signalCode !== null) break;
    const file = readdirSync(dir).find((name) => name.endsWith(".ports"));
    if (file !== undefined) {
      try {
        const url = (JSON.parse(readFileSync(path.join(dir, file), "utf8")) as { nats?: string[] }).nats?.[0];
        if (url !== undefined) return { url, stop };
      } catch {
        // written but not complete yet
      }
    }
    await sleep(50);
  }
  await stop();
  throw new Error(`nats-server did not start: ${stderr}`);
}
