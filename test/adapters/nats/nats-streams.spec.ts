import {
  connect,
  createInbox,
  type Msg,
  type MsgHdrs,
  type NatsConnection,
  headers as natsHeaders,
} from "@nats-io/transport-node";
import { expect } from "chai";
import { type NatsListener, startNatsListener } from "../../../adapters/nats/nats-listener.js";
import { createNatsTransport } from "../../../adapters/nats/nats-outbound.js";
import { DEFAULT_STREAM_WINDOW } from "../../../adapters/nats/nats-stream.js";
import type { BridgeConfig, NatsConfig } from "../../../bridge/config/config.js";
import type { BridgeError } from "../../../bridge/errors/bridge-error.js";
import { Code } from "../../../bridge/errors/code.js";
import { decodeStatus } from "../../../bridge/errors/rich-status.js";
import { silentLogger } from "../../../bridge/logger.js";
import { anonymousPrincipals } from "../../../bridge/security/principal.js";
import { createGrpcJsTransport } from "../../support/grpc-js-transport.js";
import { createLabClient, expectFault, headerOf, type LabClient } from "../../support/lab-client.js";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";
import type { LabResult } from "../../support/lab-process.js";
import { LAB_DETAIL, type NatsLabProcess, startNatsLabProcess } from "../../support/nats-lab-process.js";
import { type NatsServerFixture, startNatsServer } from "../../support/nats-server.js";
import { startNatsLabTransport } from "../../support/nats-transport.js";
import { waitFor } from "../../support/wait.js";

function natsSettings(url: string, prefix = "sb"): NatsConfig {
  return {
    url,
    prefix,
    queue: "sessionbridge",
    token: undefined,
    user: undefined,
    password: undefined,
    credsFile: undefined,
    nkeyFile: undefined,
    tls: undefined,
    intake: [],
  };
}

function withNats(url: string, more: (config: BridgeConfig) => BridgeConfig = (c) => c, prefix = "sb") {
  return (config: BridgeConfig): BridgeConfig =>
    more({ ...config, listeners: { ...config.listeners, nats: natsSettings(url, prefix) } });
}

/** One message of a stream as a raw NATS client sees it. */
interface Seen {
  readonly kind: string;
  readonly msg: Msg;
}

/**
 * A raw NATS requester of the documented framing (docs/nats.md "Streaming") that acks
 * only when told: it records every message on its reply subject, so a test sees what
 * the bridge sent and when it stopped.
 */
class RawStream {
  readonly seen: Seen[] = [];
  readonly #connection: NatsConnection;
  readonly #inbox = createInbox();
  readonly #sub;

  constructor(connection: NatsConnection, subject: string, payload: Uint8Array, hdrs: MsgHdrs) {
    this.#connection = connection;
    this.#sub = connection.subscribe(this.#inbox, {
      callback: (error, msg) => {
        if (error === null) this.seen.push({ kind: msg.headers?.get("sb-stream") ?? "", msg });
      },
    });
    connection.publish(subject, payload, { reply: this.#inbox, headers: hdrs });
  }

  get messages(): Seen[] {
    return this.seen.filter((s) => s.kind === "msg");
  }

  get end(): Msg | undefined {
    return this.seen.find((s) => s.kind === "end")?.msg;
  }

  get control(): string {
    return this.seen.find((s) => s.kind === "head")?.msg.headers?.get("sb-stream-control") ?? "";
  }

  send(field: string, value: string): void {
    const hdrs = natsHeaders();
    hdrs.set(field, value);
    this.#connection.publish(this.control, new Uint8Array(0), { headers: hdrs });
  }

  /** Stops listening: the requester is gone. */
  vanish(): void {
    this.#sub.unsubscribe();
  }
}

function jsonHeaders(extra: Record<string, string> = {}): MsgHdrs {
  const hdrs = natsHeaders();
  hdrs.set("Content-Type", "application/json");
  for (const [key, value] of Object.entries(extra)) hdrs.set(key, value);
  return hdrs;
}

const text = (value: string): Uint8Array => new TextEncoder().encode(value);

/** sb-status-bin of a fault message: its exact code. */
function statusCode(msg: Msg | undefined): number | undefined {
  const raw = msg?.headers?.get("sb-status-bin");
  return raw === undefined || raw === "" ? undefined : decodeStatus(Buffer.from(raw, "base64")).code;
}

describe("server streams over NATS (docs/nats.md Streaming)", function () {
  this.timeout(90_000);
  let server: NatsServerFixture;
  let raw: NatsConnection;

  before(async () => {
    server = await startNatsServer();
    raw = await connect({ servers: server.url });
  });

  after(async () => {
    await raw?.close();
    await server?.stop();
  });

  describe("inbound: NATS client → bridge → gRPC process", () => {
    let harness: LabHarness;
    let client: LabClient;

    before(async () => {
      harness = await startLabHarness("memory", { adjust: withNats(server.url) });
      client = createLabClient(
        await startNatsLabTransport({
          url: server.url,
          prefix: "sb",
          fallback: createGrpcJsTransport(harness.address),
        }),
      );
    });

    after(async () => {
      await client?.close();
      await harness?.close();
    });

    it("every response arrives in order with the session facts, and the process's trailers at the end (S1, S6)", async () => {
      const start = await client.unary("Counter", "Start", { key: "ns-1" });
      const out = await client.serverStream<LabResult>("Counter", "Watch", {
        key: "ns-1",
        text: "w",
        count: 20,
      });
      expect(out.response.map((m) => m.text)).to.deep.equal(
        Array.from({ length: 20 }, (_, i) => `w#${i + 1}`),
      );
      expect(out.sessionId).to.equal(start.sessionId);
      expect(out.messageId).to.match(/^[A-Za-z0-9_-]+$/);
      expect(headerOf(out.trailers, "x-lab-trailer")).to.equal("watched");
      // The session is free again: its turn was given back when the stream ended (S6).
      const next = await client.unary<LabResult>("Counter", "Do", { key: "ns-1", text: "after" });
      expect(next.response.log).to.include("Do:after");
    });

    it("with Content-Type application/json each message is protobuf JSON; head, msgs and end are marked", async () => {
      await client.unary("Counter", "Start", { key: "ns-json" });
      const stream = new RawStream(
        raw,
        "sb.test.lab.v1.Counter.Watch",
        text('{"key":"ns-json","text":"j","count":3}'),
        jsonHeaders(),
      );
      await waitFor(() => stream.end !== undefined);
      expect(stream.seen.map((s) => s.kind)).to.deep.equal(["head", "msg", "msg", "msg", "end"]);
      const head = stream.seen[0]?.msg;
      expect(head?.headers?.get("sb-session-id")).to.match(/^[A-Za-z0-9_-]{22,}$/);
      expect(head?.headers?.get("sb-stream-control")).to.not.equal("");
      expect(stream.messages.map((s) => s.msg.headers?.get("sb-stream-seq"))).to.deep.equal(["1", "2", "3"]);
      expect(JSON.parse(new TextDecoder().decode(stream.messages[2]?.msg.data))).to.include({
        key: "ns-json",
        text: "j#3",
      });
      expect(stream.end?.headers?.get("Nats-Service-Error-Code")).to.equal("");
      expect(stream.end?.headers?.get("x-lab-trailer")).to.equal("watched");
    });

    it("a stream that reaches no session ends at once with NOT_FOUND/CORRELATION_ERROR (S4, S14)", async () => {
      const fault = await expectFault(
        client.serverStream("Counter", "Watch", { key: "ns-nobody", count: 1 }),
      );
      expect(fault.code).to.equal(Code.NOT_FOUND);
      expect(fault.reason).to.equal("CORRELATION_ERROR");
    });

    it("sb-timeout-ms bounds the whole stream: DEADLINE_EXCEEDED (S15)", async () => {
      await client.unary("Counter", "Start", { key: "ns-late" });
      const fault = await expectFault(
        client.serverStream(
          "Counter",
          "Watch",
          { key: "ns-late", count: 3, delay_ms: 3_000 },
          { timeoutMs: 400 },
        ),
      );
      expect(fault.code).to.equal(Code.DEADLINE_EXCEEDED);
    });

    it("a requester that never acks gets one window and no more; its cancel ends the call and frees the session", async () => {
      await client.unary("Counter", "Start", { key: "ns-slow" });
      const stream = new RawStream(
        raw,
        "sb.test.lab.v1.Counter.Watch",
        text('{"key":"ns-slow","count":500}'),
        jsonHeaders({ "sb-stream-window": "4" }),
      );
      await waitFor(() => stream.messages.length >= 4);
      // The process runs on; the bridge sends nothing beyond the window while no ack comes.
      await waitFor(() => harness.lab.deliveries.some((d) => d.key === "ns-slow" && d.method === "Watch"));
      await new Promise((resolve) => setTimeout(resolve, 500));
      expect(stream.messages).to.have.length(4);
      stream.send("sb-stream-ack", "4");
      await waitFor(() => stream.messages.length >= 8);
      await new Promise((resolve) => setTimeout(resolve, 300));
      expect(stream.messages).to.have.length(8);
      stream.send("sb-stream-cancel", "1");
      await waitFor(() => stream.end !== undefined);
      expect(statusCode(stream.end)).to.equal(Code.CANCELLED);
      const next = await client.unary<LabResult>("Counter", "Do", { key: "ns-slow", text: "free" });
      expect(next.response.log).to.include("Do:free");
    });

    it("a request stream (client streaming) is UNIMPLEMENTED on NATS", async () => {
      const reply = await raw.request("sb.test.lab.v1.Counter.Upload", text("{}"), {
        timeout: 10_000,
        headers: jsonHeaders(),
      });
      expect(reply.headers?.get("Nats-Service-Error-Code")).to.equal("501");
      expect(reply.headers?.get("sb-reason")).to.equal("UNSUPPORTED_ON_STREAM");
    });

    it("sb-stream-window that is no positive integer is INVALID_ARGUMENT", async () => {
      const reply = await raw.request("sb.test.lab.v1.Counter.Watch", text('{"key":"x"}'), {
        timeout: 10_000,
        headers: jsonHeaders({ "sb-stream-window": "-3" }),
      });
      expect(reply.headers?.get("Nats-Service-Error-Code")).to.equal("400");
    });

    describe("a vanished requester (ack timeout)", () => {
      let listener: NatsListener;
      let connection: NatsConnection;

      before(async () => {
        connection = await connect({ servers: server.url });
        // A second NATS port on the same engine, with a short ack timeout.
        listener = await startNatsListener(
          {
            bridge: harness.runtime.bridge,
            contracts: harness.runtime.bridge.contracts,
            principals: anonymousPrincipals(),
            maxPayloadBytes: 64 * 1024,
            logger: silentLogger,
          },
          { connection, config: { prefix: "acks", queue: "acks" }, streamAckTimeoutMs: 300 },
        );
      });

      after(async () => {
        await listener?.close();
        await connection?.close();
      });

      it("holds one window, then gives the stream up with RESOURCE_EXHAUSTED and frees the session", async () => {
        for (let round = 0; round < 5; round++) {
          const key = `ns-gone-${round}`;
          await client.unary("Counter", "Start", { key });
          const stream = new RawStream(
            raw,
            "acks.test.lab.v1.Counter.Watch",
            text(`{"key":"${key}","count":1000}`),
            jsonHeaders({ "sb-stream-window": "2" }),
          );
          await waitFor(() => stream.end !== undefined);
          expect(stream.messages).to.have.length(2);
          expect(statusCode(stream.end)).to.equal(Code.RESOURCE_EXHAUSTED);
          // The cancelled call gave the session's turn back (S6).
          const next = await client.unary<LabResult>("Counter", "Do", { key, text: "back" });
          expect(next.response.log).to.include("Do:back");
        }
      });

      it("a requester that is gone entirely costs the bridge nothing after the timeout", async () => {
        await client.unary("Counter", "Start", { key: "ns-vanished" });
        const stream = new RawStream(
          raw,
          "acks.test.lab.v1.Counter.Watch",
          text('{"key":"ns-vanished","count":1000}'),
          jsonHeaders({ "sb-stream-window": "3" }),
        );
        await waitFor(() => stream.messages.length >= 1);
        stream.vanish();
        const next = await client.unary<LabResult>("Counter", "Do", { key: "ns-vanished", text: "back" });
        expect(next.response.log).to.include("Do:back");
      });
    });
  });

  describe("outbound: bridge → nats:// process", () => {
    let harness: LabHarness;
    let process: NatsLabProcess;
    let clients: LabClient[];

    before(async () => {
      process = await startNatsLabProcess(server.url, "lab.streams");
      harness = await startLabHarness("memory", {
        adjust: withNats(
          server.url,
          (c) => ({
            ...c,
            processes: [
              ...c.processes.map((p) => ({
                ...p,
                services: p.services.filter((s) => !s.endsWith(".Counter")),
              })),
              {
                name: "nats-counter",
                services: ["test.lab.v1.Counter"],
                location: "nats://lab.streams",
                envelope: false,
              },
            ],
          }),
          "sbo",
        ),
      });
      clients = [
        createLabClient(createGrpcJsTransport(harness.address)),
        createLabClient(
          await startNatsLabTransport({
            url: server.url,
            prefix: "sbo",
            fallback: createGrpcJsTransport(harness.address),
          }),
        ),
      ];
    });

    after(async () => {
      for (const c of clients ?? []) await c.close();
      await harness?.close();
      await process?.close();
    });

    for (const [index, from] of ["gRPC → NATS", "NATS → NATS"].entries()) {
      it(`${from}: the process's stream arrives in order with its headers and trailers; it got the session facts`, async () => {
        const client = clients[index] as LabClient;
        const key = `os-${index}`;
        const start = await client.unary("Counter", "Start", { key });
        const out = await client.serverStream<LabResult>(
          "Counter",
          "Watch",
          { key, text: "o", count: 150 },
          { timeoutMs: 30_000 },
        );
        expect(out.response.map((m) => m.text)).to.deep.equal(
          Array.from({ length: 150 }, (_, i) => `o#${i + 1}`),
        );
        expect(out.response[0]?.session_id).to.equal(start.sessionId);
        expect(Number(out.response[0]?.deadline_ms)).to.be.within(1, 30_000);
        expect(out.sessionId).to.equal(start.sessionId);
        expect(headerOf(out.headers, "x-process-header")).to.equal("nats-lab");
        expect(headerOf(out.trailers, "x-lab-trailer")).to.equal("watched");
      });

      it(`${from}: a fault mid-stream arrives after the messages with its exact code, reason and details (S14)`, async () => {
        const client = clients[index] as LabClient;
        const key = `ofault-${index}`;
        await client.unary("Counter", "Start", { key });
        const seen: string[] = [];
        const fault = await expectFault(
          (async () => {
            const out = await client.serverStream<LabResult>("Counter", "Watch", {
              key,
              text: "f",
              count: 2,
              fail_code: Code.FAILED_PRECONDITION,
            });
            seen.push(...out.response.map((m) => m.text));
          })(),
        );
        expect(fault.code).to.equal(Code.FAILED_PRECONDITION);
        expect(fault.message).to.equal("lab fault 9");
        expect(fault.reason).to.equal("LAB_FAULT");
        expect(fault.errorMetadata.key).to.equal(key);
        const detail = fault.details.find((d) => d.typeUrl === LAB_DETAIL.typeUrl);
        expect(detail === undefined ? undefined : [...detail.value]).to.deep.equal([...LAB_DETAIL.value]);
        expect(headerOf(fault.trailers, "x-fault-note")).to.equal("from-the-process");
        expect(process.streamed.get(key)).to.equal(2);
      });
    }

    it("a caller that cancels cancels the process's stream", async () => {
      const client = clients[0] as LabClient;
      await client.unary("Counter", "Start", { key: "ocancel" });
      const cancel = new AbortController();
      const watching = expectFault(
        client.serverStream(
          "Counter",
          "Watch",
          { key: "ocancel", count: 1000, delay_ms: 20 },
          { signal: cancel.signal },
        ),
      );
      await waitFor(() => (process.streamed.get("ocancel") ?? 0) >= 2);
      cancel.abort();
      expect((await watching).code).to.equal(Code.CANCELLED);
      await waitFor(() => process.cancelled.has("ocancel"));
    });

    it("a process that ignores the window is failed with RESOURCE_EXHAUSTED instead of buffered", async () => {
      const rogue = await connect({ servers: server.url });
      rogue.subscribe("rogue.>", {
        callback: (_error, msg) => {
          const head = natsHeaders();
          head.set("sb-stream", "head");
          head.set("sb-stream-control", createInbox());
          msg.respond(new Uint8Array(0), { headers: head });
          for (let i = 1; i <= 5000; i++) {
            const hdrs = natsHeaders();
            hdrs.set("sb-stream", "msg");
            hdrs.set("sb-stream-seq", String(i));
            msg.respond(new Uint8Array(0), { headers: hdrs });
          }
        },
      });
      const connection = await connect({ servers: server.url });
      try {
        const contracts = harness.runtime.bridge.contracts;
        const operation = contracts.operations.get("/test.lab.v1.Counter/Watch");
        if (operation === undefined) throw new Error("no Watch in the lab contracts");
        const processClient = createNatsTransport({
          connection,
          contracts,
          maxPayloadBytes: 64 * 1024,
        }).connect({
          name: "rogue",
          location: new URL("nats://rogue"),
          envelope: false,
        });
        let received = 0;
        let failure: unknown;
        try {
          for await (const event of processClient.stream({
            operation,
            messageId: "m-rogue",
            sessionId: undefined,
            seq: 0,
            oneWay: false,
            principal: "anonymous",
            correlation: {},
            metadata: {},
            traceparent: undefined,
            tracestate: undefined,
            deadlineMs: Date.now() + 20_000,
            signal: new AbortController().signal,
            codec: "proto",
            messages: (async function* () {
              yield new Uint8Array(0);
            })(),
          })) {
            if (event.type === "message") {
              received += 1;
              // A slow consumer: the flood arrives while this one message is handled.
              await new Promise((resolve) => setTimeout(resolve, 200));
            }
          }
        } catch (error) {
          failure = error;
        }
        expect((failure as BridgeError | undefined)?.code).to.equal(Code.RESOURCE_EXHAUSTED);
        expect(received).to.be.at.most(DEFAULT_STREAM_WINDOW + 1);
      } finally {
        await connection.close();
        await rogue.close();
      }
    });
  });
});
