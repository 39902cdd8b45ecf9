import { execFile } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import type * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import type { Logger } from "../../bridge/logger.js";
import {
  type IdleMemoryReport,
  startIdleMemoryReducer,
  youngGenerationBytes,
} from "../../cli/idle-memory.js";
import { type BridgeProcess, startLabBridgeProcess } from "../support/bridge-process.js";
import { unaryCall } from "../support/grpc-call.js";
import {
  type LabProcess,
  type LabResult,
  labCounterClient,
  startLabProcess,
} from "../support/lab-process.js";
import { sleep, waitFor } from "../support/wait.js";

const exec = promisify(execFile);

/** The young generation's committed size in a fresh Node process: V8's minimum. */
async function minimumYoungGenerationBytes(): Promise<number> {
  const { stdout } = await exec(process.execPath, [
    "-e",
    'console.log(require("node:v8").getHeapSpaceStatistics().find((s) => s.space_name === "new_space").space_size)',
  ]);
  return Number(stdout.trim());
}

/**
 * Keeps many objects alive across scavenges, as start-up and calls in flight do: the
 * survivors make V8 grow the young generation.
 */
function growYoungGeneration(): void {
  let kept: { n: number; s: string }[] = [];
  for (let round = 0; round < 200; round++) {
    for (let i = 0; i < 20_000; i++) kept.push({ n: i, s: `x${i}` });
    if (kept.length > 100_000) kept = kept.slice(50_000);
  }
}

interface Logged {
  readonly fields: Record<string, unknown>;
  readonly message: string;
}

function recordingLogger(): { logger: Logger; entries: Logged[] } {
  const entries: Logged[] = [];
  const record = (fields: Record<string, unknown>, message: string): void => {
    entries.push({ fields, message });
  };
  return { logger: { debug: record, info: record, warn: record, error: record }, entries };
}

describe("idle memory reduction", function () {
  this.timeout(90_000);

  let minimum: number;
  before(async () => {
    minimum = await minimumYoungGenerationBytes();
  });

  describe("sessionbridge start", () => {
    let dir: string;
    let lab: LabProcess;
    let bridge: BridgeProcess;
    let client: grpc.Client;
    let stderr = "";

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), "sb-idle-"));
      lab = await startLabProcess();
      bridge = await startLabBridgeProcess(dir, lab.port);
      bridge.child.stderr?.on("data", (d: Buffer) => {
        stderr += d.toString();
      });
      client = labCounterClient(bridge.address);
    });

    after(async () => {
      client?.close();
      bridge?.child.kill("SIGKILL");
      await lab?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    const reductions = (): IdleMemoryReport[] =>
      bridge.lines
        .map((line) => JSON.parse(line) as IdleMemoryReport & { msg?: string })
        .filter((entry) => entry.msg === "idle memory reduced");

    it("gives the young generation back to its minimum once idle after start-up, quietly", async () => {
      // A generous wait for an event: the bridge reduces after 10 s without calls.
      await waitFor(() => reductions().length > 0, 60_000, "an idle memory reduction");
      const [report] = reductions();
      expect(report?.youngGenerationBytes).to.be.at.most(minimum);
      expect(report?.youngGenerationBytesBefore).to.be.at.least(report?.youngGenerationBytes ?? 0);
      expect(report?.heapCommittedBytes).to.be.at.most(report?.heapCommittedBytesBefore ?? 0);
      // No experimental or other warning: the user sets no flag and sees nothing.
      expect(stderr).to.equal("");
    });

    it("keeps serving sessions after it", async () => {
      const started = await unaryCall<LabResult>(client, "Start", { key: "idle-a" });
      expect(started.response.session_id).to.be.a("string").and.not.equal("");
      await unaryCall(client, "Do", { key: "idle-a", text: "after the reduction" });
    });
  });

  describe("startIdleMemoryReducer", () => {
    it("waits until no call is in flight, runs once, and again only after the heap grew", async () => {
      let inflight = 1;
      const { logger, entries } = recordingLogger();
      const reducer = startIdleMemoryReducer({
        inflightCalls: () => inflight,
        logger,
        idleMs: 200,
        checkIntervalMs: 50,
        // This process runs mocha: only a call in flight keeps the reducer off here.
        maxEventLoopUtilization: 0.99,
      });
      try {
        growYoungGeneration();
        // A call in flight: many quiet checks pass and none reduces.
        await sleep(1000);
        expect(reducer.reductions).to.equal(0);

        inflight = 0;
        await waitFor(() => reducer.reductions === 1, 30_000, "the first reduction");
        const first = entries.find((e) => e.message === "idle memory reduced")
          ?.fields as unknown as IdleMemoryReport;
        expect(first.youngGenerationBytes).to.be.at.most(minimum);
        expect(youngGenerationBytes()).to.be.at.most(minimum);

        // Idle with nothing grown: no second pause.
        await sleep(1000);
        expect(reducer.reductions).to.equal(1);

        // A burst grows the young generation again; once idle, it goes back.
        growYoungGeneration();
        expect(youngGenerationBytes()).to.be.above(minimum);
        await waitFor(() => reducer.reductions === 2, 30_000, "the reduction after a burst");
        expect(youngGenerationBytes()).to.be.at.most(minimum);
      } finally {
        reducer.stop();
      }
    });

    it("counts light traffic as busy: a call started since the last check keeps it off", async () => {
      let started = 0;
      const { logger } = recordingLogger();
      const reducer = startIdleMemoryReducer({
        inflightCalls: () => 0,
        callsStarted: () => started,
        logger,
        idleMs: 200,
        checkIntervalMs: 50,
        maxEventLoopUtilization: 0.99,
      });
      // One short call per check, none ever in flight when sampled: never idle.
      const traffic = setInterval(() => {
        started += 1;
      }, 20);
      try {
        growYoungGeneration();
        await sleep(1500);
        expect(reducer.reductions).to.equal(0);
        clearInterval(traffic);
        await waitFor(() => reducer.reductions === 1, 30_000, "the reduction once the traffic stopped");
      } finally {
        clearInterval(traffic);
        reducer.stop();
      }
    });

    it("rejects options that would never or always run it", () => {
      const { logger } = recordingLogger();
      for (const bad of [{ idleMs: 0 }, { checkIntervalMs: -1 }, { maxEventLoopUtilization: 1 }]) {
        expect(() => startIdleMemoryReducer({ inflightCalls: () => 0, logger, ...bad }))
          .to.throw(BridgeError)
          .with.property("code", Code.INVALID_ARGUMENT);
      }
    });
  });
});
