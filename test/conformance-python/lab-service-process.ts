import { type ChildProcess, spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { ServiceAddresses, ServiceSettings } from "../../sdk/gen/sessionbridge/conformance/v1/harness.js";
import { repoRoot } from "../support/repo-root.js";

/** What a conformance target file declares (conformance/targets/<name>.yaml). */
export interface TargetFile {
  readonly name: string;
  readonly command: readonly string[];
  readonly build: string;
  readonly transports: readonly string[];
  readonly features: readonly string[];
  readonly expect?: "pass" | "fail";
  readonly breaks?: readonly string[];
}

export function readTarget(name: string): TargetFile {
  return parse(
    readFileSync(path.join(repoRoot(), "conformance/targets", `${name}.yaml`), "utf8"),
  ) as TargetFile;
}

/** A service under test started the way the conformance runner starts it (harness.proto). */
export interface LabServiceProcess {
  readonly addresses: ServiceAddresses;
  readonly child: ChildProcess;
  /** The last stderr the service wrote, for failure messages. */
  stderr(): string;
  /** Ends it: closes stdin (the polite way) or sends a signal (SIGKILL for crash cases). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/**
 * Starts `command` (argv relative to the repo root), writes one size-delimited
 * ServiceSettings on its stdin (4-byte big-endian length + binary protobuf) and reads the
 * size-delimited ServiceAddresses it answers on stdout.
 */
export function startLabService(
  command: readonly string[],
  settings: Partial<ServiceSettings>,
  readyTimeoutMs = 60_000,
): Promise<LabServiceProcess> {
  const [program = "", ...args] = command;
  const child = spawn(path.resolve(repoRoot(), program), args, {
    cwd: repoRoot(),
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-8192);
  });
  child.stdin?.on("error", () => undefined);
  const exited = new Promise<number | string>((resolve) =>
    child.once("exit", (code, signal) => resolve(code ?? signal ?? -1)),
  );
  const message = Buffer.from(ServiceSettings.encode(ServiceSettings.fromPartial(settings)).finish());
  const header = Buffer.alloc(4);
  header.writeUInt32BE(message.length);
  child.stdin?.write(Buffer.concat([header, message]));
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => {
      child.kill("SIGKILL");
      reject(new Error(`no ServiceAddresses within ${readyTimeoutMs} ms; stderr: ${stderr}`));
    }, readyTimeoutMs);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`the service exited (${code}) before it answered; stderr: ${stderr}`));
    });
    child.stdout?.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 4) return;
      const length = buffered.readUInt32BE(0);
      if (buffered.length < 4 + length) return;
      clearTimeout(timer);
      resolve({
        addresses: ServiceAddresses.decode(buffered.subarray(4, 4 + length)),
        child,
        stderr: () => stderr,
        async stop(signal) {
          if (child.exitCode === null && child.signalCode === null) {
            if (signal === undefined) child.stdin?.end();
            else child.kill(signal);
          }
          return exited;
        },
      });
    });
  });
}
