import { type ChildProcess, spawn } from "node:child_process";
import { writeFileSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import { stringify } from "yaml";
import { reapOnExit } from "./child-reaper.js";
import { LAB_PACKAGE, type TransportName } from "./lab-wire.js";

const READY_TIMEOUT_MS = 60_000;
/** Every service of lab.proto; PingLabService is sessionless, passed through without a session. */
export const LAB_SERVICES = [
  "LabService",
  "SequentialLabService",
  "SingleLabService",
  "PingLabService",
] as const;

export interface BridgeAddresses {
  readonly grpc: string;
  readonly http: string;
  /** The NATS subject prefix the bridge serves on, when it has NATS. */
  readonly natsPrefix: string | undefined;
}

export interface BridgeSpec {
  readonly root: string;
  readonly dir: string;
  readonly outbound: TransportName;
  /** `host:port` (gRPC), base URL (HTTP) or subject prefix (NATS) of the service. */
  readonly location: string;
  readonly natsUrl: string | undefined;
  readonly natsPrefix: string;
  /** The bridge expires sessions on the same scaled time as the service (S12). */
  readonly timeScale: number;
}

/** A real bridge started through the CLI, as users run it, so a case can kill -9 it (S10). */
export interface BridgeProcess {
  readonly addresses: BridgeAddresses;
  kill(): Promise<void>;
  stop(): Promise<void>;
  output(): string;
}

/** Writes the bridge's configuration: SQLite in the case directory, one process per lab service. */
export function writeBridgeConfig(spec: BridgeSpec): string {
  const processes = LAB_SERVICES.map((service) => {
    const full = `${LAB_PACKAGE}.${service}`;
    const location =
      spec.outbound === "grpc"
        ? `grpc://${spec.location}`
        : spec.outbound === "http"
          ? spec.location
          : `nats://${spec.location}.${full}`;
    return { name: `lab-${service}`, services: [full], location };
  });
  const config = {
    contracts: {
      importPaths: [path.join(spec.root, "proto")],
      files: [LAB_PROTO],
    },
    processes,
    listeners: {
      grpc: "127.0.0.1:0",
      http: "127.0.0.1:0",
      ...(spec.natsUrl === undefined ? {} : { nats: { url: spec.natsUrl, prefix: spec.natsPrefix } }),
    },
    store: `sqlite:${path.join(spec.dir, "sessions.db")}`,
    // Short one-way retries so S11 cases see the retries within seconds.
    defaults: {
      oneWay: { maxAttempts: 20, initialBackoffMs: 50, maxBackoffMs: 400, attemptTimeoutMs: 5000 },
      ...(spec.timeScale === 1 ? {} : { timeScale: spec.timeScale }),
    },
  };
  const file = path.join(spec.dir, "sessionbridge.yaml");
  writeFileSync(file, stringify(config));
  return file;
}

const LAB_PROTO = "sessionbridge/conformance/v1/lab.proto";

export async function startBridgeProcess(root: string, configFile: string): Promise<BridgeProcess> {
  const child = spawn(
    process.execPath,
    [path.join(root, "dist/cli/main.js"), "start", "--config", configFile, "--drain-ms", "1000"],
    {
      cwd: root,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  reapOnExit(child);
  let output = "";
  const keep = (text: string) => {
    output = (output + text).slice(-16384);
  };
  child.stderr?.setEncoding("utf8").on("data", keep);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const addresses = await readReady(child, keep, () => output);
  const running = () => child.exitCode === null && child.signalCode === null;
  return {
    addresses,
    output: () => output,
    async kill() {
      if (running()) child.kill("SIGKILL");
      await exited;
    },
    async stop() {
      if (!running()) return;
      child.kill("SIGTERM");
      const hard = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(hard);
    },
  };
}

function readReady(
  child: ChildProcess,
  keep: (t: string) => void,
  output: () => string,
): Promise<BridgeAddresses> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`the bridge was not ready in ${READY_TIMEOUT_MS} ms: ${output()}`));
    }, READY_TIMEOUT_MS);
    child.once("exit", (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`the bridge exited (${code ?? signal}) before it was ready: ${output()}`));
    });
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      keep(`${line}\n`);
      try {
        const entry = JSON.parse(line) as {
          msg?: string;
          grpc?: string;
          http?: string;
          nats?: { prefix?: string };
        };
        if (entry.msg === "sessionbridge ready" && entry.grpc !== undefined) {
          clearTimeout(timer);
          resolve({ grpc: entry.grpc, http: `http://${entry.http ?? ""}`, natsPrefix: entry.nats?.prefix });
        }
      } catch {
        // not a log line
      }
    });
  });
}
