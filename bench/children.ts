import { type ChildProcess, fork, spawn } from "node:child_process";
import { appendFileSync } from "node:fs";
import { createInterface } from "node:readline";

/** Every child still running; all of them are killed when the bench exits, however it exits. */
const live = new Set<ChildProcess>();
let installed = false;

function killAll(): void {
  for (const child of live) child.kill("SIGKILL");
  live.clear();
}

/** Kills every child on exit, on SIGINT/SIGTERM and on an uncaught failure. */
export function installChildCleanup(): void {
  if (installed) return;
  installed = true;
  process.on("exit", killAll);
  for (const signal of ["SIGINT", "SIGTERM"] as const) {
    process.once(signal, () => {
      killAll();
      process.stderr.write(`\nbench: ${signal}, children killed\n`);
      process.exit(130);
    });
  }
}

function track(child: ChildProcess, name: string): { stderrTail: () => string } {
  live.add(child);
  child.once("exit", () => live.delete(child));
  let tail = "";
  child.stderr?.on("data", (chunk: Buffer) => {
    tail = (tail + chunk.toString()).slice(-4000);
    if (process.env.BENCH_VERBOSE === "1") process.stderr.write(`[${name}] ${chunk}`);
  });
  return { stderrTail: () => tail };
}

/**
 * A child that talks in JSON lines on stdout (the echo process, the bridge). Lines are
 * handed out by `type` to whoever waits for that type.
 */
export class JsonLineChild {
  readonly name: string;
  readonly process: ChildProcess;
  readonly #stderr: () => string;
  readonly #waiting = new Map<string, ((message: Record<string, unknown>) => void)[]>();
  readonly #listeners = new Map<string, ((message: Record<string, unknown>) => void)[]>();
  #exit: Promise<void>;
  #exited = false;
  #otherLines: string | undefined;

  /** `module` is a Node module, run with `nodeArgs`, or with `binary` set an executable of its own. */
  constructor(
    name: string,
    module: string,
    args: readonly string[],
    nodeArgs: readonly string[] = [],
    binary = false,
  ) {
    this.name = name;
    this.process = binary
      ? spawn(module, [...args], { stdio: ["pipe", "pipe", "pipe"] })
      : spawn(process.execPath, [...nodeArgs, module, ...args], { stdio: ["pipe", "pipe", "pipe"] });
    this.#stderr = track(this.process, name).stderrTail;
    this.#exit = new Promise((resolve) =>
      this.process.once("exit", () => {
        this.#exited = true;
        resolve();
      }),
    );
    const lines = createInterface({ input: this.process.stdout as NodeJS.ReadableStream });
    lines.on("line", (line) => {
      let message: Record<string, unknown>;
      try {
        message = JSON.parse(line) as Record<string, unknown>;
      } catch {
        // What V8 prints itself (--trace-gc-nvp and the like), kept when asked for.
        if (this.#otherLines !== undefined) appendFileSync(this.#otherLines, `${line}\n`);
        return;
      }
      const type = String(message.type);
      const waiter = this.#waiting.get(type)?.shift();
      waiter?.(message);
      for (const listener of this.#listeners.get(type) ?? []) listener(message);
    });
  }

  /** Appends every stdout line that is not JSON to `file` (call right after construction). */
  keepOtherLines(file: string): void {
    this.#otherLines = file;
  }

  get pid(): number {
    const pid = this.process.pid;
    if (pid === undefined) throw new Error(`${this.name} has no pid (failed to start)`);
    return pid;
  }

  /** The next line of the given type; fails if the child exits or takes longer than `timeoutMs`. */
  next(type: string, timeoutMs = 30_000): Promise<Record<string, unknown>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => fail(`no "${type}" line within ${timeoutMs} ms`), timeoutMs);
      const fail = (why: string): void => {
        clearTimeout(timer);
        reject(new Error(`${this.name}: ${why}\n${this.#stderr()}`));
      };
      const list = this.#waiting.get(type) ?? [];
      list.push((message) => {
        clearTimeout(timer);
        resolve(message);
      });
      this.#waiting.set(type, list);
      void this.#exit.then(() => fail("exited"));
    });
  }

  /** Every line of the given type, as it arrives (next() still sees them too). */
  onLine(type: string, listener: (message: Record<string, unknown>) => void): void {
    this.#listeners.set(type, [...(this.#listeners.get(type) ?? []), listener]);
  }

  send(line: string): void {
    this.process.stdin?.write(`${line}\n`);
  }

  /** Asks the child to finish (its stdin closes), then kills it if it has not within `graceMs`. */
  async stop(graceMs = 10_000): Promise<void> {
    if (this.#exited) return;
    this.process.stdin?.end();
    const timer = setTimeout(() => this.process.kill("SIGKILL"), graceMs);
    await this.#exit;
    clearTimeout(timer);
  }
}

/** A forked child with an IPC channel (the load generator). */
export function forkTracked(name: string, module: string): { child: ChildProcess; stderrTail: () => string } {
  const child = fork(module, [], { stdio: ["ignore", "inherit", "pipe", "ipc"] });
  return { child, ...track(child, name) };
}
