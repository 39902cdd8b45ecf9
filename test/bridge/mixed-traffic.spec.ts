import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { loadBridgeSetup } from "../../bridge/config/check-config.js";
import { decodeEnvelope, EnvelopeKind } from "../../bridge/engine/envelope-codec.js";
import { Code } from "../../bridge/errors/code.js";
import { type BridgeRuntime, startBridgeRuntime } from "../../cli/bridge-runtime.js";
import { writeLabConfig } from "../support/lab-config.js";
import { STORE_KINDS } from "../support/lab-harness.js";
import { loadLabPackage } from "../support/lab-process.js";
import { waitFor } from "../support/wait.js";

const WORKERS = 8;
const ROUNDS_PER_WORKER = 12;
const MAX_ROUNDS_PER_WORKER = 200;
const MIN_RESTARTS = 3;
/** Fault reasons by which the bridge says a message was never delivered (S6, S12). */
const NEVER_DELIVERED: ReadonlySet<string> = new Set(["CANCELLED", "SESSION_ENDED"]);

interface Op {
  key: string;
  text: string;
  delay_ms: number;
}

/**
 * A process that keeps its state across its own restarts (as a durable process does) and
 * applies each sb-message-id once: what it applied is the truth the journal must match.
 */
class LedgerProcess {
  readonly applied = new Map<string, string>(); // message id → "Method:text"
  port = 0;
  #server: grpc.Server | undefined;

  async start(): Promise<void> {
    const pkg = loadLabPackage() as unknown as {
      test: { lab: { v1: { Counter: { service: grpc.ServiceDefinition } } } };
    };
    const server = new grpc.Server();
    const handle =
      (method: string) =>
      async (call: grpc.ServerUnaryCall<Op, object>, callback: grpc.sendUnaryData<object>): Promise<void> => {
        const id = String(call.metadata.get("sb-message-id")[0] ?? "");
        if (call.request.delay_ms > 0) await sleep(call.request.delay_ms);
        if (call.cancelled) return;
        if (!this.applied.has(id)) this.applied.set(id, `${method}:${call.request.text}`);
        callback(null, method === "Fire" ? {} : { key: call.request.key, text: call.request.text });
      };
    server.addService(pkg.test.lab.v1.Counter.service, {
      Start: handle("Start"),
      Do: handle("Do"),
      Peek: handle("Peek"),
      Fire: handle("Fire"),
      Finish: handle("Finish"),
    });
    this.port = await new Promise<number>((resolve, reject) =>
      server.bindAsync(`127.0.0.1:${this.port}`, grpc.ServerCredentials.createInsecure(), (error, port) =>
        error === null ? resolve(port) : reject(error),
      ),
    );
    this.#server = server;
  }

  /** Dies at once: calls in flight lose their connection. */
  kill(): void {
    this.#server?.forceShutdown();
    this.#server = undefined;
  }
}

/**
 * Sustained mixed traffic (S6, S9, S11, S12): one-way bursts, request-response calls,
 * cancellations, end operations and explicit closes on many sessions, while the process
 * is killed and restarted. The bridge must not crash or leave an unhandled rejection, and
 * afterwards every session's journal agrees with what the process applied.
 */
for (const store of STORE_KINDS) {
  describe(`sustained mixed traffic with process restarts, ${store} store`, function () {
    this.timeout(120_000);
    let dir: string;
    let ledger: LedgerProcess;
    let runtime: BridgeRuntime;
    let client: grpc.Client;
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown): void => {
      rejections.push(reason);
    };

    before(async () => {
      process.on("unhandledRejection", onRejection);
      dir = mkdtempSync(path.join(os.tmpdir(), "sb-mixed-"));
      ledger = new LedgerProcess();
      await ledger.start();
      const file = writeLabConfig(dir, ledger.port, [
        "listeners:",
        "  grpc: 127.0.0.1:0",
        `store: ${store === "memory" ? "memory" : `sqlite:${path.join(dir, "s.db")}`}`,
        "defaults:",
        "  oneWay: { maxAttempts: 50, initialBackoffMs: 20, maxBackoffMs: 200, attemptTimeoutMs: 2000 }",
      ]);
      const setup = loadBridgeSetup({ file });
      runtime = await startBridgeRuntime({ config: setup.config, contracts: setup.contracts });
      const pkg = loadLabPackage() as unknown as {
        test: { lab: { v1: { Counter: grpc.ServiceClientConstructor } } };
      };
      client = new pkg.test.lab.v1.Counter(runtime.grpc.address, grpc.credentials.createInsecure());
    });
    after(async () => {
      process.off("unhandledRejection", onRejection);
      client?.close();
      await runtime?.stop(1000);
      ledger?.kill();
      rmSync(dir, { recursive: true, force: true });
    });

    it("never crashes, and every journal matches what the process applied", async () => {
      const call = (method: string, op: Partial<Op>, cancelAfterMs?: number): Promise<string> =>
        new Promise((resolve) => {
          const fn = (client as unknown as Record<string, (...a: unknown[]) => grpc.ClientUnaryCall>)[method];
          const c = fn?.call(
            client,
            { delay_ms: 0, text: "", ...op },
            new grpc.Metadata(),
            (e: grpc.ServiceError | null) => resolve(e === null ? "OK" : (Code[e.code] ?? String(e.code))),
          );
          if (cancelAfterMs !== undefined) setTimeout(() => c?.cancel(), cancelAfterMs);
        });
      const sessionIds = new Set<string>();
      let running = true;
      let restartCount = 0;
      const restarts = (async () => {
        while (running) {
          await sleep(400);
          if (!running) break;
          ledger.kill();
          await sleep(150);
          await ledger.start();
          restartCount += 1;
        }
      })();
      const worker = async (w: number): Promise<void> => {
        // At least ROUNDS_PER_WORKER rounds, and on until the process has been restarted a
        // few times, however fast or slow the machine is (bounded all the same).
        for (let round = 0; round < MAX_ROUNDS_PER_WORKER; round++) {
          if (round >= ROUNDS_PER_WORKER && restartCount >= MIN_RESTARTS) break;
          const key = `mix-${w}-${round}`;
          if ((await call("Start", { key })) !== "OK") continue;
          const id = await runtime.bridge.sessions
            .list({ pageSize: 1000 }, "anonymous")
            .then((page) => page.sessions.find((s) => s.correlation.key === key)?.id);
          if (id !== undefined) sessionIds.add(id);
          const calls: Promise<string>[] = [];
          for (let i = 0; i < 12; i++) {
            calls.push(call("Fire", { key, text: `f${i}` }));
            if (i % 3 === 0) calls.push(call("Do", { key, text: `d${i}`, delay_ms: 5 }));
            if (i % 4 === 1) calls.push(call("Do", { key, text: `c${i}`, delay_ms: 20 }, 1 + (i % 7)));
          }
          if (round % 2 === 0) calls.push(call("Finish", { key, text: "end" }));
          else if (id !== undefined) {
            await sleep(round % 5);
            await runtime.bridge.sessions.close(id, "anonymous").catch(() => {});
          }
          await Promise.all(calls);
        }
      };
      await Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));
      running = false;
      await restarts;

      // Let one-way deliveries and their retries finish.
      await waitFor(() => runtime.bridge.stats().inflightCalls === 0, 60_000, "calls settled");
      await sleep(500);
      expect(rejections.map(String)).to.deep.equal([]);

      let checked = 0;
      for (const sessionId of sessionIds) {
        const requests = new Map<string, number>();
        const outcomes = new Map<string, { kind: number; code: number; reason: string }>();
        for await (const entry of runtime.bridge.sessions.history(sessionId, {}, "anonymous")) {
          const e = decodeEnvelope(entry.envelope);
          if (
            e.kind === EnvelopeKind.ENVELOPE_KIND_REQUEST ||
            e.kind === EnvelopeKind.ENVELOPE_KIND_ONE_WAY
          ) {
            requests.set(e.messageId, e.kind);
          } else if (e.inReplyTo !== "") {
            outcomes.set(e.inReplyTo, {
              kind: e.kind,
              code: e.fault?.code ?? 0,
              reason: e.fault?.reason ?? "",
            });
          }
        }
        for (const [messageId, kind] of requests) {
          const outcome = outcomes.get(messageId);
          const applied = ledger.applied.has(messageId);
          // Every accepted request has an outcome once traffic has settled (S9).
          expect(outcome, `outcome of ${messageId}`).to.not.equal(undefined);
          if (outcome === undefined) continue;
          checked += 1;
          if (
            outcome.kind === EnvelopeKind.ENVELOPE_KIND_RESPONSE ||
            outcome.kind === EnvelopeKind.ENVELOPE_KIND_ACK
          ) {
            expect(applied, `${messageId} journaled as done but never applied`).to.equal(true);
          } else if (NEVER_DELIVERED.has(outcome.reason)) {
            // The bridge's own verdicts that a message never went out: the caller left
            // before its turn, or the session ended first. A fault the process's side
            // reported (its code, a broken connection) is not such a verdict: a process
            // killed between applying a message and answering it applied it, and the
            // journal records the failure its caller saw.
            expect(
              applied,
              `${messageId} journaled as ${Code[outcome.code]} ${outcome.reason} (kind ${kind}) but applied`,
            ).to.equal(false);
          }
        }
      }
      expect(restartCount, "process restarts during the traffic").to.be.at.least(MIN_RESTARTS);
      expect(checked, `journal outcomes checked in ${sessionIds.size} sessions`).to.be.at.least(100);
    });
  });
}
