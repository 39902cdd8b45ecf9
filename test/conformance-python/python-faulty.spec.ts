import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { expect } from "chai";
import { Code } from "../../bridge/errors/code.js";
import { createGrpcJsTransport } from "../support/grpc-js-transport.js";
import type { LabTransport } from "../support/lab-transport.js";
import { labCall, labReply } from "./lab-calls.js";
import { type LabServiceProcess, readTarget, startLabService } from "./lab-service-process.js";

/**
 * Each faulty Python service breaks exactly its rule: the same exchange against the
 * reference keeps the rule, against the faulty service it does not. The target files say
 * which rule the conformance runner must blame.
 */
describe("Python faulty lab services (conformance/faulty/python)", function () {
  this.timeout(120_000);
  let dir: string;
  const running: LabServiceProcess[] = [];
  const clients: LabTransport[] = [];

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "sb-py-faulty-"));
  });

  after(async () => {
    for (const c of clients) await c.close();
    for (const s of running) await s.stop("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(targetName: string, stateName: string, timeScale = 1) {
    const target = readTarget(targetName);
    const service = await startLabService(target.command, {
      stateDir: path.join(dir, stateName),
      transports: ["grpc"],
      timeScale,
    });
    running.push(service);
    const client = createGrpcJsTransport(service.addresses.grpc);
    clients.push(client);
    return { service, client };
  }

  /** Runs `exchange` against the reference and against the faulty target, each on a fresh state_dir. */
  async function both<T>(
    faulty: string,
    exchange: (startService: (timeScale?: number) => ReturnType<typeof start>) => Promise<T>,
  ): Promise<{ reference: T; faulty: T }> {
    // Every start within one exchange uses the same state_dir, as a restart does.
    const reference = await exchange((scale) => start("python-reference", `${faulty}-reference`, scale));
    const broken = await exchange((scale) => start(`python-faulty-${faulty}`, `${faulty}-faulty`, scale));
    return { reference, faulty: broken };
  }

  it("declares one rule each, expects to fail, and serves what the reference serves", () => {
    const reference = readTarget("python-reference");
    const expected: Record<string, string[]> = {
      "accept-unknown": ["S4"],
      "never-expire": ["S12"],
      "ignore-deadlines": ["S15"],
      "post-not-durable": ["S9", "S10"],
    };
    for (const [name, breaks] of Object.entries(expected)) {
      const target = readTarget(`python-faulty-${name}`);
      expect(target.name).to.equal(`python-faulty-${name}`);
      expect(target.expect).to.equal("fail");
      expect(target.breaks).to.deep.equal(breaks);
      expect(target.command.slice(-2)).to.deep.equal(["--break", name]);
      expect(target.transports).to.deep.equal(reference.transports);
      expect(target.features).to.deep.equal(reference.features);
    }
  });

  it("accept-unknown: a message for an unknown session is applied instead of CORRELATION_ERROR [S4]", async () => {
    const outcome = await both("accept-unknown", async (startService) => {
      const { client } = await startService();
      const act = await labCall(client, "Act", { append: ["x"] }, { session: "nobody" });
      return [act.code, act.reason];
    });
    expect(outcome.reference).to.deep.equal([Code.NOT_FOUND, "CORRELATION_ERROR"]);
    expect(outcome.faulty).to.deep.equal([Code.OK, undefined]);
  });

  it("never-expire: an idle session outlives its scaled idle timeout [S12]", async () => {
    const outcome = await both("never-expire", async (startService) => {
      // 600000 ms × 0.0005 = 300 ms idle timeout; the session then idles five times that.
      const { client } = await startService(0.0005);
      await labReply(client, "Open", {}, { session: "idle" });
      await sleep(1500);
      const act = await labCall(client, "Act", { append: ["late"] }, { session: "idle" });
      return [act.code, act.reason];
    });
    expect(outcome.reference).to.deep.equal([Code.NOT_FOUND, "SESSION_EXPIRED"]);
    expect(outcome.faulty).to.deep.equal([Code.OK, undefined]);
  });

  it("ignore-deadlines: a sleep past the deadline is applied anyway [S15]", async () => {
    const outcome = await both("ignore-deadlines", async (startService) => {
      const { client } = await startService();
      await labReply(client, "Open", {}, { session: "slow" });
      const late = await labCall(
        client,
        "Act",
        { append: ["late"], sleepMs: 1000 },
        { session: "slow", timeoutMs: 200 },
      );
      // The Peek queues behind the abandoned (or, when broken, still sleeping) Act (S6).
      await sleep(1500);
      const peek = await labReply(client, "Peek", {}, { session: "slow" });
      return [late.code, peek.log];
    });
    expect(outcome.reference).to.deep.equal([Code.DEADLINE_EXCEEDED, []]);
    expect(outcome.faulty).to.deep.equal([Code.DEADLINE_EXCEEDED, ["late"]]);
  });

  it("post-not-durable: an acknowledged Post is lost by a kill -9 and restart [S9, S10]", async () => {
    const outcome = await both("post-not-durable", async (startService) => {
      const first = await startService();
      await labReply(first.client, "Open", { append: ["opened"] }, { session: "d" });
      const posted = await labCall(first.client, "Post", { append: ["posted"] }, { session: "d" });
      expect(posted.code).to.equal(Code.OK);
      // Read back before the crash, as a client checking its Post would.
      expect((await labReply(first.client, "Peek", {}, { session: "d" })).log).to.deep.equal([
        "opened",
        "posted",
      ]);
      expect(await first.service.stop("SIGKILL")).to.equal("SIGKILL");
      const second = await startService();
      return (await labReply(second.client, "Peek", {}, { session: "d" })).log;
    });
    expect(outcome.reference).to.deep.equal(["opened", "posted"]);
    expect(outcome.faulty).to.deep.equal(["opened"]);
  });
});
