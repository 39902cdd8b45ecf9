import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { createInterface } from "node:readline";
import { writeLabConfig } from "./lab-config.js";
import { repoRoot } from "./repo-root.js";

/** A bridge running as its own process through the CLI, as users run it. */
export interface BridgeProcess {
  readonly child: ChildProcess;
  /** host:port it listens on, from its "sessionbridge ready" log line. */
  readonly address: string;
  /** Every stdout line so far (structured JSON logs). */
  readonly lines: string[];
  /** Resolves with the exit code (or signal name) once it exits. */
  readonly exited: Promise<number | string>;
}

export const CLI = path.join(repoRoot(), "dist/cli/main.js");

export function startBridgeProcess(args: readonly string[], timeoutMs = 15_000): Promise<BridgeProcess> {
  // `start` serves HTTP on 127.0.0.1:8080 by default; tests take a free port unless they name one.
  const withHttp = args.includes("--http") ? args : [...args, "--http", "127.0.0.1:0"];
  const child = spawn(process.execPath, [CLI, "start", ...withHttp], {
    cwd: repoRoot(),
    stdio: ["ignore", "pipe", "pipe"],
  });
  const lines: string[] = [];
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal ?? -1)),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`bridge not ready in ${timeoutMs} ms; stderr: ${stderr}`));
    }, timeoutMs);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`bridge exited (${code}) before it was ready; stderr: ${stderr}`));
    });
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      lines.push(line);
      try {
        const entry = JSON.parse(line) as { msg?: string; grpc?: string };
        if (entry.msg === "sessionbridge ready" && entry.grpc !== undefined) {
          clearTimeout(timer);
          resolve({ child, address: entry.grpc, lines, exited });
        }
      } catch {
        // not a log line
      }
    });
  });
}

/**
 * A bridge process in front of the lab process on `labPort`: the lab contracts served on
 * gRPC (a free port), sessions in the SQLite file `<storeName>.db` under `dir`, where its
 * config is written too. `extraArgs` are further `start` options.
 */
export function startLabBridgeProcess(
  dir: string,
  labPort: number,
  options: { readonly storeName?: string; readonly extraArgs?: readonly string[] } = {},
): Promise<BridgeProcess> {
  return startBridgeProcess([
    "--config",
    writeLabConfig(dir, labPort),
    "--grpc",
    "127.0.0.1:0",
    "--store",
    `sqlite:${path.join(dir, `${options.storeName ?? "s"}.db`)}`,
    ...(options.extraArgs ?? []),
  ]);
}
