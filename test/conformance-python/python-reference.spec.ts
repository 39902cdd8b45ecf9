import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { expect } from "chai";
import { loadBridgeSetup } from "../../bridge/config/check-config.js";
import { Code } from "../../bridge/errors/code.js";
import { encodeErrorInfo } from "../../bridge/errors/rich-status.js";
import { type BridgeRuntime, startBridgeRuntime } from "../../cli/bridge-runtime.js";
import { createConnectTransport } from "../support/connect-transport.js";
import { createGrpcJsTransport } from "../support/grpc-js-transport.js";
import type { LabTransport } from "../support/lab-transport.js";
import { type NatsServerFixture, startNatsServer } from "../support/nats-server.js";
import { startNatsLabTransport } from "../support/nats-transport.js";
import { repoRoot } from "../support/repo-root.js";
import { LAB, labCall, labReply, PING, SEQUENTIAL, SINGLE } from "./lab-calls.js";
import { type LabServiceProcess, readTarget, startLabService } from "./lab-service-process.js";

const target = readTarget("python-reference");
const DOMAIN = "sessionbridge.conformance";

/** The transports of one running service, by name, as the suite reaches them directly. */
async function directTransports(
  service: LabServiceProcess,
  nats: NatsServerFixture,
): Promise<Record<"grpc" | "http" | "nats", LabTransport>> {
  const grpc = createGrpcJsTransport(service.addresses.grpc);
  return {
    grpc,
    http: createConnectTransport(service.addresses.http.replace(/^http:\/\//, "")),
    nats: await startNatsLabTransport({
      url: nats.url,
      prefix: service.addresses.nats,
      fallback: createGrpcJsTransport(service.addresses.grpc),
    }),
  };
}

describe("Python reference lab service (conformance/reference/python)", function () {
  this.timeout(120_000);
  let nats: NatsServerFixture;
  let service: LabServiceProcess;
  let dir: string;
  let transports: Record<"grpc" | "http" | "nats", LabTransport>;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "sb-py-lab-"));
    nats = await startNatsServer();
    service = await startLabService(target.command, {
      stateDir: path.join(dir, "state"),
      natsUrl: nats.url,
      natsSubjectPrefix: "lab",
    });
    transports = await directTransports(service, nats);
  });

  after(async () => {
    for (const t of Object.values(transports ?? {})) await t.close();
    await service?.stop();
    await nats?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("answers the harness protocol with every transport its target file declares", () => {
    expect(target.transports).to.deep.equal(["grpc", "http", "nats"]);
    expect(target.features).to.have.members([
      "streaming",
      "sequential",
      "single",
      "durable",
      "expiry",
      "pipelining",
      "nats_streams",
    ]);
    expect(service.addresses.grpc).to.match(/^127\.0\.0\.1:\d+$/);
    expect(service.addresses.http).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(service.addresses.nats).to.equal("lab");
  });

  for (const kind of ["grpc", "http", "nats"] as const) {
    describe(`directly over ${kind}`, () => {
      const t = (): LabTransport => transports[kind];
      const id = (name: string): string => `${kind}-${name}`;

      it("keeps one log per session; an Open for a live id joins it [S1, S3]", async () => {
        await labReply(t(), "Open", { append: ["a"] }, { session: id("s1"), tenant: "t", account: "1" });
        await labReply(t(), "Open", { append: ["x"] }, { session: id("s2"), tenant: "t", account: "2" });
        expect((await labReply(t(), "Act", { append: ["b"] }, { session: id("s1") })).log).to.deep.equal([
          "a",
          "b",
        ]);
        expect((await labReply(t(), "Open", { append: ["c"] }, { session: id("s1") })).log).to.deep.equal([
          "a",
          "b",
          "c",
        ]);
        expect((await labReply(t(), "Peek", {}, { session: id("s2") })).log).to.deep.equal(["x"]);
      });

      it("answers CORRELATION_ERROR for an unknown id and SESSION_CLOSED after Finish, changing nothing [S4, S12]", async () => {
        const unknown = await labCall(t(), "Act", { append: ["z"] }, { session: id("nobody") });
        expect([unknown.code, unknown.reason, unknown.domain]).to.deep.equal([
          Code.NOT_FOUND,
          "CORRELATION_ERROR",
          DOMAIN,
        ]);
        expect((await labCall(t(), "Peek", {}, { session: id("nobody") })).reason).to.equal(
          "CORRELATION_ERROR",
        );
        await labReply(t(), "Open", {}, { session: id("fin") });
        expect(
          (await labReply(t(), "Finish", { append: ["end"] }, { session: id("fin") })).log,
        ).to.deep.equal(["end"]);
        const after = await labCall(t(), "Act", { append: ["z"] }, { session: id("fin") });
        expect([after.code, after.reason]).to.deep.equal([Code.NOT_FOUND, "SESSION_CLOSED"]);
      });

      it("replays a duplicate sb-seq and refuses a gap with OUT_OF_SEQUENCE [S7]", async () => {
        const session = id("seq");
        await labReply(t(), "Open", {}, { session });
        await labReply(t(), "Act", { append: ["1"] }, { session, metadata: { "sb-seq": "1" } });
        const again = await labReply(t(), "Act", { append: ["1"] }, { session, metadata: { "sb-seq": "1" } });
        expect([again.replayed, again.log]).to.deep.equal([true, ["1"]]);
        const gap = await labCall(t(), "Act", { append: ["3"] }, { session, metadata: { "sb-seq": "3" } });
        expect([gap.code, gap.reason, gap.errorMetadata]).to.deep.equal([
          Code.FAILED_PRECONDITION,
          "OUT_OF_SEQUENCE",
          { expected_seq: "2" },
        ]);
        const two = await labReply(t(), "Act", { append: ["2"] }, { session, metadata: { "sb-seq": "2" } });
        expect(two.log).to.deep.equal(["1", "2"]);
      });

      it("answers a redelivered sb-message-id from its record, replayed, counting deliveries [S10]", async () => {
        const session = id("redeliver");
        await labReply(t(), "Open", {}, { session });
        const metadata = { "sb-message-id": id("m1") };
        const first = await labReply(t(), "Act", { append: ["once"], observe: true }, { session, metadata });
        const second = await labReply(t(), "Act", { append: ["once"], observe: true }, { session, metadata });
        expect([first.replayed, first.observed?.deliveryCount]).to.deep.equal([false, 1]);
        expect([second.replayed, second.observed?.deliveryCount, second.log]).to.deep.equal([
          true,
          2,
          ["once"],
        ]);
      });

      it("abandons a sleep at the deadline: DEADLINE_EXCEEDED, nothing applied [S15]", async () => {
        const session = id("deadline");
        await labReply(t(), "Open", {}, { session });
        const late = await labCall(
          t(),
          "Act",
          { append: ["late"], sleepMs: 5000 },
          { session, timeoutMs: 300 },
        );
        expect(late.code).to.equal(Code.DEADLINE_EXCEEDED);
        // A Peek waits for the session's earlier exclusive message, so it sees its effect.
        expect((await labReply(t(), "Peek", {}, { session })).log).to.deep.equal([]);
      });

      it("answers a fail instruction with its exact code, message, reason and details [S14]", async () => {
        const extra = encodeErrorInfo({ reason: "INNER", domain: "example.test", metadata: { k: "v" } });
        const message = "tab\there, CR/LF\r\nand 😀";
        const failed = await labCall(
          t(),
          "Ping",
          {
            fail: {
              code: Code.RESOURCE_EXHAUSTED,
              message,
              reason: "TOO_MUCH",
              details: [{ typeUrl: extra.typeUrl, value: Buffer.from(extra.value) }],
            },
          },
          {},
        );
        expect([failed.code, failed.message, failed.reason, failed.domain]).to.deep.equal([
          Code.RESOURCE_EXHAUSTED,
          message,
          "TOO_MUCH",
          DOMAIN,
        ]);
        expect(failed.details).to.have.length(2);
        expect(failed.details[1]?.typeUrl).to.equal(extra.typeUrl);
        expect(Buffer.from(failed.details[1]?.value ?? []).equals(Buffer.from(extra.value))).to.equal(true);
      });

      it("observes the session facts and custom metadata, and sends reply headers and trailers [S15]", async () => {
        const session = id("observe");
        await labReply(t(), "Open", {}, { session });
        const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
        const outcome = await labCall(
          t(),
          "Act",
          { observe: true, replyHeaders: { "x-reply": "h" }, replyTrailers: { "x-trail": "t" } },
          {
            session,
            timeoutMs: 20_000,
            metadata: {
              "x-custom": "value",
              "x-data-bin": Buffer.from([0, 1, 2]).toString("base64"),
              "sb-principal": "alice",
              "sb-seq": "1",
              "sb-message-id": id("obs-1"),
              traceparent,
            },
          },
        );
        expect(outcome.code).to.equal(Code.OK);
        const observed = outcome.reply?.observed;
        expect(observed?.metadata).to.deep.equal({ "x-custom": "value", "x-data-bin": "AAEC" });
        expect(observed?.sessionId).to.equal(session);
        expect(observed?.seq).to.equal(1);
        expect(observed?.messageId).to.equal(id("obs-1"));
        expect(observed?.principal).to.equal("alice");
        expect(observed?.traceparent).to.equal(traceparent);
        expect(observed?.deadlineRemainingMs).to.be.within(1, 20_000);
        expect(observed?.operation).to.equal(`${LAB}/Act`);
        expect(observed?.transport).to.equal(kind);
        expect(observed?.incarnation).to.be.greaterThan(0);
        expect(outcome.headers["x-reply"]).to.deep.equal(["h"]);
        expect(outcome.trailers["x-trail"]).to.deep.equal(["t"]);
        const none = await labReply(t(), "Ping", { observe: true });
        expect(none.observed?.deadlineRemainingMs).to.equal(-1);
      });

      it("echoes empty, large and non-ASCII payloads", async () => {
        const large = Buffer.alloc(kind === "nats" ? 256 * 1024 : 3 * 1024 * 1024, 7);
        const echoed = await labReply(t(), "Ping", { payload: large, note: "żółw 🐢" });
        expect(Buffer.from(echoed.payload).equals(large)).to.equal(true);
        expect(echoed.note).to.equal("żółw 🐢");
        expect((await labReply(t(), "Ping", {})).payload).to.have.length(0);
      });

      it("serves Ping in the sessionless PingLabService, and no longer in LabService", async () => {
        const pinged = await labReply(t(), "Ping", { observe: true });
        expect(pinged.observed?.operation).to.equal(`${PING}/Ping`);
        expect(pinged.observed?.sessionId).to.equal("");
        const gone = await labCall(t(), "Ping", {}, { service: LAB });
        // On NATS nobody subscribes to the subject: no responders, which is UNAVAILABLE.
        expect(gone.code, gone.message).to.equal(kind === "nats" ? Code.UNAVAILABLE : Code.UNIMPLEMENTED);
      });

      it("runs SINGLE with one session and SEQUENTIAL one session at a time [S3, S6]", async () => {
        await labReply(t(), "Open", {}, { service: SINGLE, session: id("only") });
        const second = await labCall(t(), "Open", {}, { service: SINGLE, session: id("other") });
        expect([second.code, second.reason]).to.deep.equal([Code.ALREADY_EXISTS, "SESSION_ALREADY_EXISTS"]);
        await labReply(t(), "Finish", {}, { service: SINGLE, session: id("only") });
        await labReply(t(), "Open", {}, { service: SINGLE, session: id("other") });
        await labReply(t(), "Finish", {}, { service: SINGLE, session: id("other") });

        await labReply(t(), "Open", { append: ["1"] }, { service: SEQUENTIAL, session: id("first") });
        const waiting = labCall(
          t(),
          "Open",
          { append: ["2"] },
          { service: SEQUENTIAL, session: id("second") },
        );
        await labReply(t(), "Act", { append: ["1b"] }, { service: SEQUENTIAL, session: id("first") });
        await labReply(t(), "Finish", {}, { service: SEQUENTIAL, session: id("first") });
        const admitted = await waiting;
        expect([admitted.code, admitted.reply?.log]).to.deep.equal([Code.OK, ["2"]]);
        await labReply(t(), "Finish", {}, { service: SEQUENTIAL, session: id("second") });
      });
    });
  }

  for (const kind of ["grpc", "nats"] as const) {
    it(`applies pipelined ${kind} messages of one session in arrival order, one at a time [S6]`, async () => {
      const session = `${kind}-order`;
      await labReply(transports[kind], "Open", {}, { session });
      // Later messages sleep less: only queueing in arrival order keeps them in order.
      await Promise.all(
        Array.from({ length: 8 }, (_, i) =>
          labReply(transports[kind], "Act", { append: [String(i)], sleepMs: 80 - i * 10 }, { session }),
        ),
      );
      const log = (await labReply(transports[kind], "Peek", {}, { session })).log;
      expect(log).to.deep.equal(["0", "1", "2", "3", "4", "5", "6", "7"]);
    });
  }

  for (const kind of ["grpc", "http"] as const) {
    it(`abandons a call its ${kind} client cancels: nothing applied [S15]`, async () => {
      const session = `${kind}-cancel`;
      await labReply(transports[kind], "Open", {}, { session });
      const controller = new AbortController();
      const call = labCall(
        transports[kind],
        "Act",
        { append: ["gone"], sleepMs: 3000 },
        { session, signal: controller.signal },
      );
      await sleep(300);
      controller.abort();
      expect((await call).code).to.equal(Code.CANCELLED);
      // The Peek queues behind the cancelled Act (S6): it sees the Act's effect, if any.
      expect((await labReply(transports[kind], "Peek", {}, { session })).log).to.deep.equal([]);
    });
  }

  for (const kind of ["grpc", "http", "nats"] as const) {
    it(`streams Items over ${kind}, ending with the requested fault`, async () => {
      const session = `${kind}-items`;
      await labReply(transports[kind], "Open", {}, { session });
      const ok = await labCall(
        transports[kind],
        "Items",
        { count: 3, itemBytes: 5, observe: true },
        { session },
      );
      expect(ok.code).to.equal(Code.OK);
      expect(ok.items.map((i) => [i.index, i.payload.length, i.observed?.transport])).to.deep.equal([
        [0, 5, kind],
        [1, 5, kind],
        [2, 5, kind],
      ]);
      const failing = await labCall(
        transports[kind],
        "Items",
        { count: 2, fail: { code: Code.ABORTED, message: "stop", reason: "ENOUGH" } },
        { session },
      );
      expect([failing.items.length, failing.code, failing.reason]).to.deep.equal([2, Code.ABORTED, "ENOUGH"]);
      const unknown = await labCall(transports[kind], "Items", { count: 1 }, { session: `${kind}-none` });
      expect([unknown.code, unknown.reason]).to.deep.equal([Code.NOT_FOUND, "CORRELATION_ERROR"]);
    });
  }
});

describe("Python reference lab service: durability and expiry across processes", function () {
  this.timeout(120_000);
  let dir: string;
  const running: LabServiceProcess[] = [];

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "sb-py-lab-"));
  });

  after(async () => {
    for (const s of running) await s.stop("SIGKILL");
    rmSync(dir, { recursive: true, force: true });
  });

  async function start(stateDir: string, timeScale = 1): Promise<LabServiceProcess> {
    const service = await startLabService(target.command, { stateDir, transports: ["grpc"], timeScale });
    running.push(service);
    return service;
  }

  it("keeps every answered message, one-way Posts included, across kill -9 and restart [S9, S10]", async () => {
    const stateDir = path.join(dir, "durable");
    const first = await start(stateDir);
    const t1 = createGrpcJsTransport(first.addresses.grpc);
    const before = await labReply(t1, "Ping", { observe: true });
    await labReply(t1, "Open", { append: ["opened"] }, { session: "d1" });
    await labReply(t1, "Act", { append: ["acted"] }, { session: "d1", metadata: { "sb-seq": "1" } });
    const posted = await labCall(
      t1,
      "Post",
      { append: ["posted"] },
      { session: "d1", metadata: { "sb-message-id": "p1" } },
    );
    expect(posted.code).to.equal(Code.OK);
    await t1.close();
    expect(await first.stop("SIGKILL")).to.equal("SIGKILL");

    const second = await start(stateDir);
    const t2 = createGrpcJsTransport(second.addresses.grpc);
    try {
      const peek = await labReply(t2, "Peek", { observe: true }, { session: "d1" });
      expect(peek.log).to.deep.equal(["opened", "acted", "posted"]);
      expect(peek.observed?.incarnation).to.equal((before.observed?.incarnation ?? 0) + 1);
      // The records came back too: the sequence number and the message id are not applied twice.
      const again = await labReply(
        t2,
        "Act",
        { append: ["acted"] },
        { session: "d1", metadata: { "sb-seq": "1" } },
      );
      expect([again.replayed, again.log]).to.deep.equal([true, ["opened", "acted"]]);
      await labCall(
        t2,
        "Post",
        { append: ["posted"] },
        { session: "d1", metadata: { "sb-message-id": "p1" } },
      );
      expect((await labReply(t2, "Peek", {}, { session: "d1" })).log).to.deep.equal([
        "opened",
        "acted",
        "posted",
      ]);
    } finally {
      await t2.close();
    }
  });

  it("expires idle sessions by itself with the time scale [S12]", async () => {
    // 600000 ms idle × 0.0005 = 300 ms.
    const service = await start(path.join(dir, "expiry"), 0.0005);
    const t = createGrpcJsTransport(service.addresses.grpc);
    try {
      await labReply(t, "Open", {}, { session: "e1" });
      await sleep(1500);
      const expired = await labCall(t, "Act", { append: ["late"] }, { session: "e1" });
      expect([expired.code, expired.reason]).to.deep.equal([Code.NOT_FOUND, "SESSION_EXPIRED"]);
    } finally {
      await t.close();
    }
  });
});

describe("Python reference lab service behind a real bridge", function () {
  this.timeout(120_000);
  let nats: NatsServerFixture;
  let service: LabServiceProcess;
  let dir: string;
  const bridges: BridgeRuntime[] = [];

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "sb-py-bridge-"));
    nats = await startNatsServer();
    service = await startLabService(target.command, {
      stateDir: path.join(dir, "state"),
      natsUrl: nats.url,
      natsSubjectPrefix: "pylab",
    });
  });

  after(async () => {
    for (const b of bridges) await b.stop(1000);
    await service?.stop();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  /** A bridge whose process for the lab services is the Python service over `outbound`. */
  async function bridgeTo(outbound: "grpc" | "http" | "nats"): Promise<BridgeRuntime> {
    const services = [LAB, SEQUENTIAL, SINGLE, PING];
    const processes = services.map((name) => {
      const location =
        outbound === "grpc"
          ? `grpc://${service.addresses.grpc}`
          : outbound === "http"
            ? service.addresses.http
            : `nats://${service.addresses.nats}.${name}`;
      return `  - { name: ${name.split(".").pop()}, services: [${name}], location: ${JSON.stringify(location)} }`;
    });
    const file = path.join(dir, `bridge-${outbound}.yaml`);
    writeFileSync(
      file,
      [
        "contracts:",
        `  importPaths: [${JSON.stringify(path.join(repoRoot(), "proto"))}]`,
        "  files: [sessionbridge/conformance/v1/lab.proto]",
        "processes:",
        ...processes,
        "listeners:",
        "  grpc: 127.0.0.1:0",
        `  nats: { url: ${JSON.stringify(nats.url)}, prefix: sb-${outbound} }`,
        "store: memory",
      ].join("\n"),
    );
    const setup = loadBridgeSetup({ file });
    const bridge = await startBridgeRuntime({ contracts: setup.contracts, config: setup.config });
    bridges.push(bridge);
    return bridge;
  }

  for (const outbound of ["grpc", "http", "nats"] as const) {
    it(`opens, acts and finishes a session through the bridge to the service over ${outbound}`, async () => {
      const bridge = await bridgeTo(outbound);
      const client = createGrpcJsTransport(bridge.grpc.address);
      try {
        const opened = await labCall(
          client,
          "Open",
          { append: ["open"], observe: true },
          { tenant: "acme", account: outbound },
        );
        expect(opened.code, opened.message).to.equal(Code.OK);
        const sessionId = opened.headers["sb-session-id"]?.[0] ?? "";
        expect(sessionId).to.have.length.greaterThan(10);
        expect(opened.reply?.observed?.sessionId).to.equal(sessionId);
        expect(opened.reply?.observed?.transport).to.equal(outbound);
        // By correlation values, then by id; the deadline and custom metadata reach the service.
        const acted = await labReply(
          client,
          "Act",
          { append: ["act"], observe: true },
          { tenant: "acme", account: outbound, timeoutMs: 20_000, metadata: { "x-custom": "yes" } },
        );
        expect(acted.log).to.deep.equal(["open", "act"]);
        expect(acted.observed?.metadata["x-custom"]).to.equal("yes");
        expect(acted.observed?.deadlineRemainingMs).to.be.within(1, 20_000);
        expect(acted.observed?.messageId).to.have.length.greaterThan(0);
        const finished = await labReply(client, "Finish", { append: ["finish"] }, { session: sessionId });
        expect(finished.log).to.deep.equal(["open", "act", "finish"]);
        const after = await labCall(client, "Act", { append: ["late"] }, { session: sessionId });
        expect([after.code, after.reason]).to.deep.equal([Code.NOT_FOUND, "SESSION_CLOSED"]);
        // A fault of the service crosses the bridge with its code, reason and domain (S14).
        await labReply(client, "Open", {}, { tenant: "acme", account: `${outbound}-2` });
        const fault = await labCall(
          client,
          "Act",
          { fail: { code: Code.PERMISSION_DENIED, message: "no", reason: "DENIED" } },
          { tenant: "acme", account: `${outbound}-2` },
        );
        expect([fault.code, fault.reason, fault.domain]).to.deep.equal([
          Code.PERMISSION_DENIED,
          "DENIED",
          DOMAIN,
        ]);
        // PingLabService is sessionless: the bridge passes it through without a session.
        const pinged = await labCall(client, "Ping", { note: "pong", observe: true });
        expect(pinged.code, pinged.message).to.equal(Code.OK);
        expect(pinged.reply?.note).to.equal("pong");
        expect(pinged.reply?.observed?.sessionId).to.equal("");
        expect(pinged.reply?.observed?.operation).to.equal(`${PING}/Ping`);
        expect(pinged.headers["sb-session-id"]).to.equal(undefined);
        expect(pinged.trailers["sb-session-id"]).to.equal(undefined);
      } finally {
        await client.close();
      }
    });
  }
});
