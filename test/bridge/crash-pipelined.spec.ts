import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { type BridgeProcess, startBridgeProcess } from "../support/bridge-process.js";
import { unaryCall } from "../support/grpc-call.js";
import { writeLabConfig } from "../support/lab-config.js";
import { type LabProcess, type LabResult, loadLabPackage, startLabProcess } from "../support/lab-process.js";
import { sleep, waitFor } from "../support/wait.js";

const SESSIONS = 6;
const MESSAGES = 40;
const WINDOW = 6;

function labClient(address: string): grpc.Client {
  const pkg = loadLabPackage() as unknown as {
    test: { lab: { v1: { Counter: grpc.ServiceClientConstructor } } };
  };
  return new pkg.test.lab.v1.Counter(address, grpc.credentials.createInsecure());
}

/** The n-th message of a session: numbered, alternating request-response and one-way. */
function message(n: number): { method: "Do" | "Fire"; text: string } {
  return { method: n % 3 === 0 ? "Fire" : "Do", text: `m${n}` };
}

/**
 * S6, S7, S10 under a crash with several messages of each session in flight: senders
 * pipeline numbered messages (request-response and one-way mixed), the bridge is killed
 * with SIGKILL, restarted on the same database, and the senders resend whatever was not
 * acknowledged, with the same numbers. Each session's process state must show every
 * message exactly once, in number order: nothing recovered is overtaken by what came
 * after it, nothing is applied twice.
 */
describe("crash recovery with pipelined senders (S6, S7, S10)", function () {
  this.timeout(90_000);
  let dir: string;
  let lab: LabProcess;
  let bridge: BridgeProcess | undefined;
  let config: string;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "sb-pipelined-"));
    lab = await startLabProcess();
    config = writeLabConfig(dir, lab.port, [
      "listeners:",
      "  grpc: 127.0.0.1:0",
      `store: sqlite:${path.join(dir, "sessions.db")}`,
      "defaults:",
      "  oneWay: { maxAttempts: 20, initialBackoffMs: 20, maxBackoffMs: 200, attemptTimeoutMs: 5000 }",
    ]);
  });

  after(async () => {
    bridge?.child.kill("SIGKILL");
    await lab?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("keeps every session's order and applies each message once", async () => {
    bridge = await startBridgeProcess(["--config", config]);
    let client = labClient(bridge.address);
    const keys = Array.from({ length: SESSIONS }, (_, i) => `pipe-${i}`);
    const sessionIds = new Map<string, string>();
    for (const key of keys) {
      const out = await unaryCall<LabResult>(client, "Start", { key });
      sessionIds.set(key, out.response.session_id);
    }

    const acked = new Map<string, Set<number>>(keys.map((k) => [k, new Set<number>()]));
    let alive = true;
    const send = (key: string, n: number): Promise<void> => {
      const { method, text } = message(n);
      return unaryCall(client, method, { key, text, delay_ms: 3 }, { "sb-seq": String(n) }).then(() => {
        acked.get(key)?.add(n);
      });
    };
    // Up to WINDOW messages of a session in flight at once, sent in number order.
    const pipeline = async (key: string, numbers: readonly number[]): Promise<void> => {
      const inflight = new Set<Promise<void>>();
      for (const n of numbers) {
        if (!alive) return;
        const p = send(key, n).catch(() => {});
        inflight.add(p);
        void p.finally(() => inflight.delete(p));
        if (inflight.size >= WINDOW) await Promise.race(inflight);
      }
      await Promise.all(inflight);
    };
    const numbers = Array.from({ length: MESSAGES }, (_, i) => i + 1);
    const first = keys.map((key) => pipeline(key, numbers));
    const total = () => [...acked.values()].reduce((sum, set) => sum + set.size, 0);
    await waitFor(() => total() >= (SESSIONS * MESSAGES) / 3, 30_000, "traffic before the crash");
    bridge.child.kill("SIGKILL");
    alive = false;
    await Promise.all(first);
    client.close();
    expect(await bridge.exited).to.equal("SIGKILL");
    const unacked = keys.reduce((sum, key) => sum + MESSAGES - (acked.get(key)?.size ?? 0), 0);
    // Meaningful only if the crash left messages unacknowledged.
    expect(unacked, "messages unacknowledged at the crash").to.be.greaterThan(0);

    bridge = await startBridgeProcess(["--config", config]);
    client = labClient(bridge.address);
    alive = true;
    try {
      // The senders resend everything not acknowledged, in order, with the same numbers.
      await Promise.all(
        keys.map((key) =>
          pipeline(
            key,
            numbers.filter((n) => !acked.get(key)?.has(n)),
          ),
        ),
      );
      for (const key of keys) {
        expect(
          [...(acked.get(key) ?? [])].sort((a, b) => a - b),
          `acknowledged in ${key}`,
        ).to.deep.equal(numbers);
      }
      const expected = ["Start", ...numbers.map((n) => `${message(n).method}:${message(n).text}`)];
      // One-way messages are applied after their acknowledgement: wait for the last ones.
      await waitFor(
        () => keys.every((key) => lab.logOf(sessionIds.get(key) ?? "").length >= expected.length),
        30_000,
        "every message applied",
      ).catch(() => {});
      for (const key of keys) {
        expect(lab.logOf(sessionIds.get(key) ?? ""), `log of ${key}`).to.deep.equal(expected);
      }
    } finally {
      client.close();
      bridge.child.kill("SIGTERM");
      await Promise.race([bridge.exited, sleep(5000)]);
    }
  });
});
