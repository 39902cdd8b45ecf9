import { type ChildProcess, spawn } from "node:child_process";
import net from "node:net";
import { ServiceAddresses, ServiceSettings } from "../../sdk/gen/sessionbridge/conformance/v1/harness.js";
import { reapOnExit } from "./child-reaper.js";

const START_TIMEOUT_MS = 60_000;
const MAX_ANSWER_BYTES = 64 * 1024;

export interface ServiceLaunch {
  /** argv; the first entry is resolved against `cwd`. */
  readonly command: readonly string[];
  readonly cwd: string;
  readonly settings: ServiceSettings;
}

/** The service under test as the harness protocol starts it (harness.proto). */
export interface ServiceProcess {
  readonly addresses: ServiceAddresses;
  /** The last lines it wrote on stderr, for reports. */
  stderr(): string;
  /** kill -9 (S10: nothing is flushed or drained). */
  kill(): Promise<void>;
  /** Closes stdin, then SIGTERM, then SIGKILL. */
  stop(): Promise<void>;
}

export async function startServiceProcess(launch: ServiceLaunch): Promise<ServiceProcess> {
  const [program, ...args] = launch.command;
  if (program === undefined) throw new Error("empty command");
  const child = spawn(program, args, { cwd: launch.cwd, stdio: ["pipe", "pipe", "pipe"] });
  reapOnExit(child);
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-8192);
  });
  child.stdin?.on("error", () => undefined);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const settings = ServiceSettings.encode(launch.settings).finish();
  const frame = Buffer.alloc(4 + settings.length);
  frame.writeUInt32BE(settings.length, 0);
  frame.set(settings, 4);
  child.stdin?.write(frame);
  let addresses: ServiceAddresses;
  try {
    addresses = await readAnswer(child, () => stderr);
  } catch (error) {
    child.kill("SIGKILL");
    await exited;
    throw error;
  }
  const isRunning = () => child.exitCode === null && child.signalCode === null;
  return {
    addresses,
    stderr: () => stderr,
    async kill() {
      if (isRunning()) child.kill("SIGKILL");
      await exited;
    },
    async stop() {
      if (!isRunning()) return;
      child.stdin?.end();
      const timer = setTimeout(() => child.kill("SIGTERM"), 2000);
      const hard = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
      clearTimeout(hard);
    },
  };
}

/** One size-delimited ServiceAddresses from stdout: a 4-byte big-endian length, then the message. */
function readAnswer(child: ChildProcess, stderr: () => string): Promise<ServiceAddresses> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const timer = setTimeout(
      () => fail(new Error(`the service sent no addresses in ${START_TIMEOUT_MS} ms; stderr: ${stderr()}`)),
      START_TIMEOUT_MS,
    );
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      reject(error);
    };
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 4) return;
      const length = buffered.readUInt32BE(0);
      if (length > MAX_ANSWER_BYTES) {
        fail(new Error(`the service announced ${length} bytes of addresses: not a harness answer`));
        return;
      }
      if (buffered.length < 4 + length) return;
      clearTimeout(timer);
      child.stdout?.off("data", onData);
      // Anything else it prints on stdout is read and dropped, so it never blocks on a full pipe.
      child.stdout?.resume();
      try {
        resolve(ServiceAddresses.decode(buffered.subarray(4, 4 + length)));
      } catch (error) {
        reject(new Error(`the service's addresses do not decode: ${String(error)}`));
      }
    };
    child.stdout?.on("data", onData);
    child.once("exit", (code, signal) =>
      fail(
        new Error(`the service exited (${code ?? signal}) before it sent its addresses; stderr: ${stderr()}`),
      ),
    );
    child.once("error", (error) => fail(error));
  });
}

/**
 * A TCP forwarder on a fixed loopback port: the bridge keeps one process location while the
 * service behind it is killed and restarted on new ports (S10 cases).
 */
export interface Forwarder {
  readonly port: number;
  retarget(port: number): void;
  close(): Promise<void>;
}

export async function startForwarder(targetPort: number): Promise<Forwarder> {
  let target = targetPort;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((inbound) => {
    const outbound = net.connect(target, "127.0.0.1");
    sockets.add(inbound);
    sockets.add(outbound);
    const done = () => {
      inbound.destroy();
      outbound.destroy();
      sockets.delete(inbound);
      sockets.delete(outbound);
    };
    inbound.on("error", done).on("close", done);
    outbound.on("error", done).on("close", done);
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    retarget(port) {
      target = port;
      // Connections to the old service are dead anyway: drop them so clients reconnect.
      for (const s of sockets) s.destroy();
    },
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}
