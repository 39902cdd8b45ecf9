import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { ServiceAddresses, ServiceSettings } from "../../sdk/gen/sessionbridge/conformance/v1/harness.js";
import { repoRoot } from "../support/repo-root.js";

/** A service under test started by the harness protocol of harness.proto. */
export interface HarnessService {
  readonly addresses: ServiceAddresses;
  readonly child: ChildProcess;
  /** Closes its stdin (the protocol's stop) and waits for it to exit. */
  stop(): Promise<void>;
  /** kill -9, for restart cases (S10). */
  kill(): Promise<void>;
}

/** Largest ServiceAddresses accepted on stdout: a few short strings. */
const MAX_ADDRESSES_BYTES = 64 * 1024;

/**
 * Starts `command` (argv, relative to the repository root), writes it one size-delimited
 * ServiceSettings (4-byte big-endian length, then the message) on stdin and reads the
 * size-delimited ServiceAddresses it answers on stdout.
 */
export function startHarnessService(
  command: readonly string[],
  settings: Partial<ServiceSettings>,
  timeoutMs = 30_000,
): Promise<HarnessService> {
  const [program, ...args] = command;
  if (program === undefined) throw new Error("empty command");
  const child = spawn(path.resolve(repoRoot(), program), args, {
    cwd: repoRoot(),
    stdio: ["pipe", "pipe", "pipe"],
  });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-8192);
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.once("error", () => undefined);
  child.stdin?.on("error", () => undefined);
  const body = ServiceSettings.encode(ServiceSettings.fromPartial(settings)).finish();
  const frame = Buffer.alloc(4 + body.length);
  frame.writeUInt32BE(body.length, 0);
  Buffer.from(body).copy(frame, 4);
  child.stdin?.write(frame);

  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(() => fail(new Error(`no addresses within ${timeoutMs} ms`)), timeoutMs);
    const fail = (error: Error): void => {
      clearTimeout(timer);
      child.kill("SIGKILL");
      reject(new Error(`${error.message}; stderr: ${stderr}`));
    };
    void exited.then(() =>
      fail(new Error(`service exited (${child.exitCode ?? child.signalCode}) before answering`)),
    );
    child.stdout?.on("data", (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 4) return;
      const size = buffered.readUInt32BE(0);
      if (size > MAX_ADDRESSES_BYTES) return fail(new Error(`addresses of ${size} bytes`));
      if (buffered.length < 4 + size) return;
      clearTimeout(timer);
      const addresses = ServiceAddresses.decode(buffered.subarray(4, 4 + size));
      resolve({
        addresses,
        child,
        async stop() {
          child.stdin?.end();
          const forced = setTimeout(() => child.kill("SIGKILL"), 10_000);
          await exited;
          clearTimeout(forced);
        },
        async kill() {
          child.kill("SIGKILL");
          await exited;
        },
      });
    });
  });
}

/** The reference service and the faulty variants, as their target files name them. */
export const GO_REFERENCE = [".tools/conformance/go/sb-lab-go"] as const;
export function goFaulty(name: string): readonly string[] {
  return [".tools/conformance/go/sb-lab-go-faulty", "--break", name];
}
