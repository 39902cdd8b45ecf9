import { type ChildProcess, spawn } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { expect } from "chai";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { EnvelopeKind } from "../../sdk/gen/sessionbridge/v1/envelope.js";
import { STORE_KINDS, useLabHarness } from "../support/lab-harness.js";
import { readJournal } from "../support/lab-journal.js";
import { repoRoot } from "../support/repo-root.js";
import { waitFor } from "../support/wait.js";

/** Built by scripts/install-tools.sh from test/go/deadline-process. */
const DEADLINE_PROCESS = path.join(repoRoot(), ".tools/bin/sb-deadline-process");

/** What the caller gives the call; the Go process gives up on it at the same deadline. */
const DEADLINE_MS = 1500;

/** The longest the event loop is held while the process's deadline passes (a bound, not a timing claim). */
const MAX_HOLD_MS = 30_000;

interface DeadlineProcess {
  readonly port: number;
  readonly dir: string;
  readonly child: ChildProcess;
}

/** Starts sb-deadline-process with a fresh marker directory; resolves once it listens. */
async function startDeadlineProcess(): Promise<DeadlineProcess> {
  if (!existsSync(DEADLINE_PROCESS)) {
    throw new Error(`${DEADLINE_PROCESS} is missing: run bash scripts/install-tools.sh`);
  }
  const dir = mkdtempSync(path.join(os.tmpdir(), "sb-deadline-"));
  const child = spawn(DEADLINE_PROCESS, [dir], { stdio: ["ignore", "pipe", "inherit"] });
  const port = await new Promise<number>((resolve, reject) => {
    child.once("error", reject);
    child.once("exit", (code) => reject(new Error(`sb-deadline-process exited (${code})`)));
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).once("line", (line) =>
      resolve(Number(line)),
    );
  });
  return { port, dir, child };
}

/** Sleeps the main thread without running the event loop. */
function holdLoop(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * S15 when the process gives up first: grpc-go's server resets a stream whose deadline
 * (the grpc-timeout the bridge sent) has passed with RST_STREAM(CANCEL) and no status. The
 * bridge reports that as DEADLINE_EXCEEDED, as grpc-go's own client does once its deadline
 * has passed, to the caller and in the journal (S9), and says the process reset the call.
 * Read as a cancellation it would be CANCELLED; read as a response cut short, INTERNAL.
 *
 * The bridge's own deadline timer would normally come first and hide the reset, so the
 * test makes the reset come first: once the process has the call, a timer callback holds
 * the event loop (the bridge runs in this process) until the process says its deadline
 * passed and it reset the stream. Node then reads the socket (the poll phase) before it
 * runs its next timers, so the bridge reads the reset while its own deadline timer is
 * still pending, every time.
 */
for (const store of STORE_KINDS) {
  describe(`a process that resets a call at its deadline (S15), ${store} store`, () => {
    let goProcess: DeadlineProcess | undefined;
    before(async () => {
      goProcess = await startDeadlineProcess();
    });
    after(() => {
      goProcess?.child.kill();
      if (goProcess !== undefined) rmSync(goProcess.dir, { recursive: true, force: true });
    });
    // Registered after the process starts: its before() runs second and reads the port.
    const harness = useLabHarness(
      { store, client: "grpc-js", title: `${store} store` },
      {
        adjust: (config) => ({
          ...config,
          processes: config.processes.map((p) => ({ ...p, location: `grpc://127.0.0.1:${goProcess?.port}` })),
        }),
      },
    );

    it("answers DEADLINE_EXCEEDED and journals it, saying the process reset the call", async () => {
      const h = harness();
      const dir = (goProcess as DeadlineProcess).dir;
      const base = `http://${h.runtime.http?.address}/test.lab.v1.Counter`;
      const post = (method: string, body: object, headers: Record<string, string> = {}) =>
        fetch(`${base}/${method}`, {
          method: "POST",
          headers: { "content-type": "application/json", ...headers },
          body: JSON.stringify(body),
        });
      const start = await post("Start", { key: "reset" });
      expect(start.status).to.equal(200);
      const sessionId = start.headers.get("sb-session-id") ?? "";
      expect(sessionId).to.not.equal("");

      // A Connect client states its deadline in a header and keeps no timer of its own, so
      // the status it gets is the bridge's.
      const reply = post("Do", { key: "reset", text: "late" }, { "connect-timeout-ms": String(DEADLINE_MS) });
      await waitFor(() => existsSync(path.join(dir, "received")), 10_000, "the process has the call");
      await new Promise<void>((resolve) =>
        setTimeout(() => {
          const expired = path.join(dir, "expired");
          const until = Date.now() + MAX_HOLD_MS;
          while (!existsSync(expired) && Date.now() < until) holdLoop(5);
          // The process writes the marker after the reset went out; let it reach the socket.
          holdLoop(100);
          resolve();
        }, 0),
      );
      expect(existsSync(path.join(dir, "expired")), "the process's deadline passed").to.equal(true);

      const answer = await reply;
      const body = (await answer.json()) as { code?: string; message?: string };
      expect({ status: answer.status, code: body.code }).to.deep.equal({
        status: 504,
        code: "deadline_exceeded",
      });
      // What happened: the process gave up (its reset), not the bridge's timer.
      expect(body.message).to.contain("the process reset the call");
      const outcome = (await readJournal(h.client, sessionId)).find(
        (e) => e.envelope?.operation === "/test.lab.v1.Counter/Do" && e.envelope.inReplyTo !== "",
      );
      expect(outcome?.envelope?.kind).to.equal(EnvelopeKind.ENVELOPE_KIND_FAULT);
      expect({
        code: outcome?.envelope?.fault?.code,
        reason: outcome?.envelope?.fault?.reason,
      }).to.deep.equal({
        code: Code.DEADLINE_EXCEEDED,
        reason: Reason.DEADLINE_EXCEEDED,
      });
      expect(outcome?.envelope?.fault?.message).to.contain("the process reset the call");
    });
  });
}
