import { expect } from "chai";
import { createGrpcTransport } from "../../adapters/grpc/h2-outbound.js";
import type { UnaryReply } from "../../bridge/call/call.js";
import { loadBridgeSetup } from "../../bridge/config/check-config.js";
import { createBridge } from "../../bridge/engine/bridge-engine.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import { createMemoryStore } from "../../bridge/store/memory-store.js";
import type { SessionStore } from "../../bridge/store/session-store.js";
import { LAB_CONFIG } from "../support/lab-harness.js";
import { type LabProcess, startLabProcess } from "../support/lab-process.js";

/** A real store whose next commit fails when asked to, as a full disk would make it. */
function storeFailingOnce(inner: SessionStore): SessionStore & { failNext(): void } {
  let fail = false;
  return Object.assign(Object.create(inner) as SessionStore, {
    kind: inner.kind,
    commit: (batch: Parameters<SessionStore["commit"]>[0]) => {
      if (fail && (batch.entries?.length ?? 0) > 0) {
        fail = false;
        return Promise.reject(new BridgeError(Code.UNAVAILABLE, Reason.STORE_FAILURE, "disk full"));
      }
      return inner.commit(batch);
    },
    failNext: () => {
      fail = true;
    },
  });
}

/** Op { key, text } on the wire, for calls made straight to the engine. */
function op(key: string, text: string): Buffer {
  return Buffer.concat([
    Buffer.from([0x0a, key.length]),
    Buffer.from(key),
    Buffer.from([0x12, text.length]),
    Buffer.from(text),
  ]);
}

/**
 * S9 under a store failure: a message whose journal write failed was never acknowledged,
 * and the session carries on afterwards: its journal continues where the store has it,
 * and the failed sb-seq can be sent again.
 */
describe("a failed journal write does not wedge the session (S7, S9)", () => {
  let lab: LabProcess;
  before(async () => {
    lab = await startLabProcess();
  });
  after(async () => {
    await lab.close();
  });

  it("answers UNAVAILABLE for the unrecorded message, then accepts the retry and what follows", async () => {
    const setup = loadBridgeSetup({ file: LAB_CONFIG });
    const store = storeFailingOnce(createMemoryStore());
    const transport = createGrpcTransport();
    const client = transport.connect({
      name: "lab",
      location: new URL(`grpc://127.0.0.1:${lab.port}`),
      envelope: false,
    });
    const processes = new Map(setup.config.processes[0]?.services.map((s) => [s, client]));
    const bridge = createBridge({
      contracts: setup.contracts,
      store,
      processes,
      defaults: setup.config.defaults,
    });
    await bridge.start();
    try {
      const call = (method: string, text: string, seq?: number): Promise<UnaryReply> => {
        const operation = setup.contracts.operations.get(`/test.lab.v1.Counter/${method}`);
        if (operation === undefined) throw new Error(method);
        return bridge.unary({
          operation,
          metadata: seq === undefined ? {} : { "sb-seq": [String(seq)] },
          deadlineMs: undefined,
          signal: new AbortController().signal,
          principal: "anonymous",
          codec: "proto",
          payload: op("wedge", text),
        });
      };
      const started = await call("Start", "");
      store.failNext();
      const failed = await call("Do", "lost", 1).then(
        () => undefined,
        (error: unknown) => error as BridgeError,
      );
      expect(failed?.code).to.equal(Code.UNAVAILABLE);
      expect(lab.deliveries.filter((d) => d.text === "lost")).to.have.length(0);
      // The same number again, then the next: both recorded and delivered in order.
      await call("Do", "retried", 1);
      const next = await call("Do", "next", 2);
      expect(next.sessionId).to.equal(started.sessionId);
      expect(lab.logOf(started.sessionId ?? "")).to.deep.equal(["Start", "Do:retried", "Do:next"]);
      const journal = [];
      for await (const entry of bridge.sessions.history(started.sessionId ?? "", {}, "anonymous")) {
        journal.push(entry.index);
      }
      expect(journal).to.deep.equal(journal.map((_, i) => i + 1));
    } finally {
      await bridge.close();
      await client.close();
    }
  });
});
