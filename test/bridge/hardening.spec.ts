import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { expect } from "chai";
import { loadBridgeSetup } from "../../bridge/config/check-config.js";
import { type BridgeRuntime, startBridgeRuntime } from "../../cli/bridge-runtime.js";
import { EnvelopeKind } from "../../sdk/gen/sessionbridge/v1/envelope.js";
import { failure, header, unaryCall } from "../support/grpc-call.js";
import { type LabHarness, reasonOf, STORE_KINDS, startLabHarness } from "../support/lab-harness.js";
import type { LabResult } from "../support/lab-process.js";
import { repoRoot } from "../support/repo-root.js";

/** Captures unhandled rejections while a test runs: the bridge must never leave one (robustness). */
function watchRejections(): { readonly seen: unknown[]; stop(): void } {
  const seen: unknown[] = [];
  const onRejection = (reason: unknown): void => {
    seen.push(reason);
  };
  process.on("unhandledRejection", onRejection);
  return { seen, stop: () => process.off("unhandledRejection", onRejection) };
}

function grpcCall(
  client: grpc.Client,
  method: string,
  request: object,
  metadata: Record<string, string> = {},
): { promise: Promise<unknown>; call: grpc.ClientUnaryCall } {
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(metadata)) md.set(k, v);
  let call: grpc.ClientUnaryCall | undefined;
  const promise = new Promise((resolve, reject) => {
    const fn = (client as unknown as Record<string, (...args: unknown[]) => grpc.ClientUnaryCall>)[method];
    if (fn === undefined) throw new Error(`no method ${method}`);
    call = fn.call(client, request, md, {}, (error: grpc.ServiceError | null, value: unknown) =>
      error === null ? resolve(value) : reject(error),
    );
  });
  return { promise, call: call as unknown as grpc.ClientUnaryCall };
}

for (const store of STORE_KINDS) {
  describe(`hardening: nothing a client sends crashes the bridge or makes it lie, ${store} store`, () => {
    let h: LabHarness;
    before(async () => {
      h = await startLabHarness(store);
    });
    after(async () => {
      await h.close();
    });

    it("a session ending while its one-way messages are being journaled leaves no unhandled rejection", async () => {
      const watch = watchRejections();
      try {
        for (let round = 0; round < 12; round++) {
          const key = `crash-${round}`;
          const other = `crash-other-${round}`;
          const started = await unaryCall<LabResult>(h.clients.Counter, "Start", { key });
          await unaryCall(h.clients.Counter, "Start", { key: other });
          const calls: Promise<unknown>[] = [];
          for (let i = 0; i < 30; i++) {
            calls.push(unaryCall(h.clients.Counter, "Fire", { key, text: `f${i}`, delay_ms: 2 }));
            calls.push(unaryCall(h.clients.Counter, "Fire", { key: other, text: `o${i}` }));
            if (i === 3 && round % 2 === 0) calls.push(unaryCall(h.clients.Counter, "Finish", { key }));
          }
          if (round % 2 === 1) {
            // An explicit close lands while the one-way messages are still arriving.
            await sleep(round % 4);
            calls.push(h.runtime.bridge.sessions.close(started.response.session_id, "anonymous"));
          }
          await Promise.allSettled(calls);
        }
        // Deliveries and their outcomes settle after the callers were answered.
        await sleep(300);
        expect(watch.seen.map(String)).to.deep.equal([]);
      } finally {
        watch.stop();
      }
    });

    it("a close in the same turn as one-way messages still being journaled leaves no unhandled rejection", async () => {
      const watch = watchRejections();
      try {
        const op = h.runtime.bridge.contracts.operations.get("/test.lab.v1.Counter/Fire");
        if (op === undefined) throw new Error("no Fire operation");
        for (let round = 0; round < 3; round++) {
          const key = `same-turn-${round}`;
          const started = await unaryCall<LabResult>(h.clients.Counter, "Start", { key });
          // Op { key }, by hand, so the calls reach the engine in one turn of the event loop.
          const payload = Buffer.from([0x0a, key.length, ...Buffer.from(key)]);
          const fires = Array.from({ length: 10 }, () =>
            h.runtime.bridge.unary({
              operation: op,
              metadata: {},
              deadlineMs: undefined,
              signal: new AbortController().signal,
              principal: "anonymous",
              codec: "proto",
              payload,
            }),
          );
          // Admitted by now; with a durable store their journal writes are still in flight.
          await new Promise((resolve) => setImmediate(resolve));
          const closed = h.runtime.bridge.sessions.close(started.response.session_id, "anonymous");
          await Promise.allSettled([...fires, closed]);
        }
        await sleep(300);
        expect(watch.seen.map(String)).to.deep.equal([]);
      } finally {
        watch.stop();
      }
    });

    it("a call cancelled while it waits for its turn is never delivered (S6, S9)", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "cancel-q" });
      const slow = unaryCall(h.clients.Counter, "Do", { key: "cancel-q", text: "slow", delay_ms: 300 });
      await sleep(30);
      const queued = grpcCall(h.clients.Counter, "Do", { key: "cancel-q", text: "queued" });
      queued.promise.catch(() => {});
      await sleep(30);
      queued.call.cancel();
      await slow;
      const after = await unaryCall<LabResult>(h.clients.Counter, "Do", { key: "cancel-q", text: "after" });
      expect(after.response.log).to.deep.equal(["Start", "Do:slow", "Do:after"]);
      expect(h.lab.deliveries.filter((d) => d.text === "queued")).to.have.length(0);
    });

    it("a call cancelled after delivery records what the process answered, not CANCELLED (S9)", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "cancel-d" });
      const running = grpcCall(h.clients.Counter, "Do", { key: "cancel-d", text: "applied", delay_ms: 200 });
      running.promise.catch(() => {});
      await sleep(60);
      running.call.cancel();
      const after = await unaryCall<LabResult>(h.clients.Counter, "Do", { key: "cancel-d", text: "next" });
      expect(after.response.log).to.deep.equal(["Start", "Do:applied", "Do:next"]);
      const delivered = h.lab.deliveries.find((d) => d.text === "applied");
      const history = await readHistory(h, start.response.session_id);
      const outcome = history.find((e) => e.inReplyTo === delivered?.messageId);
      expect(outcome?.kind).to.equal(EnvelopeKind.ENVELOPE_KIND_RESPONSE);
    });

    it("a metadata value the transports cannot carry is refused at admission, naming the key (S9)", async () => {
      const answer = await rawCall(h.address, "/test.lab.v1.Counter/Fire", { "x-note": "h\u00e9llo" });
      expect(answer.status).to.equal("3");
      expect(answer.message).to.contain("x-note");
    });

    it("a deadline of 30 days works, also while the call waits for its turn (S15)", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "long-deadline" });
      const slow = unaryCall(h.clients.Counter, "Do", { key: "long-deadline", text: "slow", delay_ms: 150 });
      await sleep(30);
      const deadline = new Date(Date.now() + 30 * 24 * 3600_000);
      const out = await unaryCall<LabResult>(
        h.clients.Counter,
        "Do",
        { key: "long-deadline", text: "patient" },
        {},
        { deadline },
      );
      await slow;
      expect(out.response.log).to.deep.equal(["Start", "Do:slow", "Do:patient"]);
    });

    it("S1: a correlated non-starter reaches its session by sb-session-id alone", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "by-id" });
      const sessionId = start.response.session_id;
      const out = await unaryCall<LabResult>(
        h.clients.Counter,
        "Do",
        { text: "no-key" },
        { "sb-session-id": sessionId },
      );
      expect(out.response.session_id).to.equal(sessionId);
      // Values that are present must still match.
      const wrong = await failure(
        unaryCall(h.clients.Counter, "Do", { key: "someone-else" }, { "sb-session-id": sessionId }),
      );
      expect(reasonOf(wrong)).to.equal("CORRELATION_ERROR");
    });

    it("S1, S7: a fault carries sb-message-id, and its replay carries the same one", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "fault-ids" });
      const sessionId = start.response.session_id;
      const first = await failure(
        unaryCall(h.clients.Counter, "Do", { key: "fault-ids", fail_code: 9 }, { "sb-seq": "1" }),
      );
      const messageId = header(first.metadata, "sb-message-id");
      expect(messageId).to.be.a("string").and.not.equal("");
      expect(header(first.metadata, "sb-session-id")).to.equal(sessionId);
      const again = await failure(
        unaryCall(h.clients.Counter, "Do", { key: "fault-ids", fail_code: 9 }, { "sb-seq": "1" }),
      );
      expect(again.code).to.equal(9);
      expect(header(again.metadata, "sb-message-id")).to.equal(messageId);
    });

    it("a History follower that stops reading misses nothing and ends when the session does (S9)", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "slow-follower" });
      const sessionId = start.response.session_id;
      const follower = h.runtime.bridge.sessions
        .history(sessionId, { follow: true }, "anonymous")
        [Symbol.asyncIterator]();
      const first = await follower.next();
      expect(first.value?.index).to.equal(1);
      // The follower reads nothing while the session keeps producing.
      for (let i = 0; i < 100; i++)
        await unaryCall(h.clients.Counter, "Do", { key: "slow-follower", text: `${i}` });
      await unaryCall(h.clients.Counter, "Finish", { key: "slow-follower" });
      const indexes = [1];
      for (;;) {
        const next = await follower.next();
        if (next.done === true) break;
        indexes.push(next.value.index);
      }
      // started, Start + answer, 100 × (Do + answer), Finish + answer, ended.
      expect(indexes).to.deep.equal(Array.from({ length: 206 }, (_, i) => i + 1));
    });

    it("ending sessions releases what the engine held for them (S12)", async () => {
      const before = h.runtime.bridge.stats();
      for (let i = 0; i < 300; i++) {
        await unaryCall(h.clients.Counter, "Start", { key: `turnover-${i}` });
        await unaryCall(h.clients.Counter, "Finish", { key: `turnover-${i}` });
      }
      const after = h.runtime.bridge.stats();
      expect(after.liveSessions).to.equal(before.liveSessions);
      // Dead heap entries are dropped once they are half of the heap.
      expect(after.lifetimeEntries).to.be.at.most(Math.max(2 * after.liveSessions, after.liveSessions + 64));
    });
  });

  describe(`hardening: uncorrelated starters and process faults, ${store} store`, () => {
    let dir: string;
    let process: TicketsProcess;
    let runtime: BridgeRuntime;
    let client: grpc.Client;

    before(async () => {
      dir = mkdtempSync(path.join(os.tmpdir(), "sb-tickets-"));
      process = await startTicketsProcess();
      const file = path.join(dir, "sessionbridge.yaml");
      writeFileSync(
        file,
        [
          "contracts:",
          `  importPaths: [${JSON.stringify(TICKETS_PROTO_DIR)}]`,
          "  files: [test/tickets/v1/tickets.proto]",
          "processes:",
          "  - name: tickets",
          "    services: [test.tickets.v1.Tickets]",
          `    location: grpc://127.0.0.1:${process.port}`,
          "listeners:",
          "  grpc: 127.0.0.1:0",
          `store: ${store === "memory" ? "memory" : `sqlite:${path.join(dir, "s.db")}`}`,
        ].join("\n"),
      );
      const setup = loadBridgeSetup({ file });
      runtime = await startBridgeRuntime({ config: setup.config, contracts: setup.contracts });
      client = new (ticketsPackage().Tickets)(runtime.grpc.address, grpc.credentials.createInsecure());
    });
    after(async () => {
      client?.close();
      await runtime?.stop(1000);
      await process?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it("S8: concurrent calls with one Idempotency-Key to an uncorrelated starter: one delivery, one session", async () => {
      const op = runtime.bridge.contracts.operations.get("/test.tickets.v1.Tickets/Open");
      if (op === undefined) throw new Error("no Open operation");
      // Ask { text: "once", delay_ms: 50 }, made by hand: the calls must reach the engine
      // in the same turn of the event loop, as pipelined HTTP/2 streams can.
      const payload = Buffer.from([0x0a, 4, ...Buffer.from("once"), 0x18, 50]);
      const call = () =>
        runtime.bridge.unary({
          operation: op,
          metadata: { "idempotency-key": ["same-key-1"] },
          deadlineMs: undefined,
          signal: new AbortController().signal,
          principal: "anonymous",
          codec: "proto",
          payload,
        });
      const outs = await Promise.all([call(), call(), call(), call(), call()]);
      expect(new Set(outs.map((o) => o.sessionId)).size).to.equal(1);
      expect(new Set(outs.map((o) => o.messageId)).size).to.equal(1);
      expect(process.delivered.filter((t) => t === "once")).to.have.length(1);
    });

    it("S14, S15: headers and trailers a process sends with a fault reach the caller", async () => {
      const error = await failure(unaryCall(client, "Use", { text: "x", fail_code: 7 }));
      expect(error.code).to.equal(7);
      expect(header(error.metadata, "x-fault-trailer")).to.equal("trailer-value");
      expect(header(error.headers, "x-fault-header")).to.equal("header-value");
    });
  });
}

interface HistoryEntry {
  readonly index: number;
  readonly kind: number;
  readonly inReplyTo: string;
}

async function readHistory(h: LabHarness, sessionId: string): Promise<HistoryEntry[]> {
  const entries: HistoryEntry[] = [];
  for await (const entry of h.runtime.bridge.sessions.history(sessionId, {}, "anonymous")) {
    const { decodeEnvelope } = await import("../../bridge/engine/envelope-codec.js");
    const envelope = decodeEnvelope(entry.envelope);
    entries.push({ index: entry.index, kind: envelope.kind, inReplyTo: envelope.inReplyTo });
  }
  return entries;
}

/** A gRPC call over raw HTTP/2, for headers grpc-js will not send; returns status and message. */
async function rawCall(
  address: string,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: string | undefined; message: string }> {
  const session = http2.connect(`http://${address}`);
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request({
        ":method": "POST",
        ":path": path,
        "content-type": "application/grpc",
        te: "trailers",
        ...headers,
      });
      let status: string | undefined;
      let message = "";
      const take = (fields: http2.IncomingHttpHeaders): void => {
        if (fields["grpc-status"] !== undefined) status = String(fields["grpc-status"]);
        if (fields["grpc-message"] !== undefined)
          message = decodeURIComponent(String(fields["grpc-message"]));
      };
      stream.on("response", take);
      stream.on("trailers", take);
      stream.on("error", reject);
      stream.on("data", () => {});
      stream.on("close", () => resolve({ status, message }));
      // An empty Op: no key, which the metadata check must refuse before correlation does.
      const frame = Buffer.alloc(5);
      stream.end(frame);
    });
  } finally {
    session.close();
  }
}

const TICKETS_PROTO_DIR = path.join(repoRoot(), "test/fixtures/tickets/proto");

function ticketsPackage(): { Tickets: grpc.ServiceClientConstructor & { service: grpc.ServiceDefinition } } {
  const definition = protoLoader.loadSync("test/tickets/v1/tickets.proto", {
    includeDirs: [TICKETS_PROTO_DIR, path.join(repoRoot(), "proto")],
    keepCase: true,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    test: {
      tickets: { v1: { Tickets: grpc.ServiceClientConstructor & { service: grpc.ServiceDefinition } } };
    };
  };
  return pkg.test.tickets.v1;
}

interface TicketsProcess {
  readonly port: number;
  readonly delivered: string[];
  close(): Promise<void>;
}

async function startTicketsProcess(): Promise<TicketsProcess> {
  const delivered: string[] = [];
  const server = new grpc.Server();
  const handler = async (
    call: grpc.ServerUnaryCall<{ text: string; fail_code: number; delay_ms: number }, object>,
    callback: grpc.sendUnaryData<object>,
  ): Promise<void> => {
    const ask = call.request;
    delivered.push(ask.text);
    if (ask.delay_ms > 0) await sleep(ask.delay_ms);
    const md = call.metadata;
    if (ask.fail_code !== 0) {
      const headers = new grpc.Metadata();
      headers.set("x-fault-header", "header-value");
      call.sendMetadata(headers);
      const trailers = new grpc.Metadata();
      trailers.set("x-fault-trailer", "trailer-value");
      callback({ code: ask.fail_code, details: "asked to fail", metadata: trailers, name: "", message: "" });
      return;
    }
    callback(null, {
      text: ask.text,
      session_id: String(md.get("sb-session-id")[0] ?? ""),
      message_id: String(md.get("sb-message-id")[0] ?? ""),
    });
  };
  server.addService(ticketsPackage().Tickets.service, { Open: handler, Use: handler });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, bound) =>
      error === null ? resolve(bound) : reject(error),
    ),
  );
  return {
    port,
    delivered,
    close: () => new Promise<void>((resolve) => server.tryShutdown(() => resolve())),
  };
}
