import { execFile } from "node:child_process";
import { promisify } from "node:util";
import { connect, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { expect } from "chai";
import type { BridgeConfig, NatsConfig } from "../../../bridge/config/config.js";
import { Code } from "../../../bridge/errors/code.js";
import { decodeErrorInfo, decodeStatus, ERROR_INFO_TYPE_URL } from "../../../bridge/errors/rich-status.js";
import { createGrpcJsTransport } from "../../support/grpc-js-transport.js";
import { createLabClient, expectFault, headerOf, type LabClient } from "../../support/lab-client.js";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";
import type { LabResult } from "../../support/lab-process.js";
import { LAB_DETAIL, type NatsLabProcess, startNatsLabProcess } from "../../support/nats-lab-process.js";
import { NATS_CLI_BIN, type NatsServerFixture, startNatsServer } from "../../support/nats-server.js";
import { startNatsLabTransport } from "../../support/nats-transport.js";
import { waitFor } from "../../support/wait.js";

const run = promisify(execFile);

/** The NATS settings of a bridge on the fixture's server, prefix "sb". */
function natsSettings(url: string): NatsConfig {
  return {
    url,
    prefix: "sb",
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

function withNats(url: string, more: (config: BridgeConfig) => BridgeConfig = (c) => c) {
  return (config: BridgeConfig): BridgeConfig =>
    more({ ...config, listeners: { ...config.listeners, nats: natsSettings(url) } });
}

/** `nats` CLI against the fixture: the real client a user would type. */
async function natsCli(server: NatsServerFixture, args: readonly string[]): Promise<string> {
  const { stdout, stderr } = await run(NATS_CLI_BIN, ["-s", server.url, "--timeout", "10s", ...args], {
    timeout: 30_000,
  });
  return `${stdout}${stderr}`;
}

async function natsLabClient(server: NatsServerFixture, grpcAddress: string): Promise<LabClient> {
  return createLabClient(
    await startNatsLabTransport({
      url: server.url,
      prefix: "sb",
      fallback: createGrpcJsTransport(grpcAddress),
    }),
  );
}

describe("NATS adapter", function () {
  this.timeout(60_000);
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

  describe("inbound: NATS clients → bridge → gRPC process", () => {
    let harness: LabHarness;
    let client: LabClient;

    before(async () => {
      harness = await startLabHarness("memory", {
        adjust: withNats(server.url, (c) => ({
          ...c,
          defaults: { ...c.defaults, maxPayloadBytes: 64 * 1024 },
        })),
      });
      client = await natsLabClient(server, harness.address);
    });

    after(async () => {
      await client?.close();
      await harness?.close();
    });

    it("`nats req` with JSON starts a session and gets JSON back with sb-session-id and sb-message-id", async () => {
      const out = await natsCli(server, [
        "req",
        "sb.test.lab.v1.Counter.Start",
        '{"key":"cli-1","text":"hello"}',
        "-H",
        "Content-Type:application/json",
      ]);
      expect(out).to.match(/sb-session-id: [A-Za-z0-9_-]{22,}/);
      expect(out).to.match(/sb-message-id: [A-Za-z0-9_-]+/);
      expect(out).to.match(/content-type: application\/json/i);
      expect(out).to.include('"key":"cli-1"');
      expect(out).to.include('"log":["Start:hello"]');
    });

    it("`nats micro ls` and `nats micro info sessionbridge` list one endpoint per operation with its metadata", async () => {
      expect(await natsCli(server, ["micro", "ls"])).to.include("sessionbridge");
      const { info } = JSON.parse(await natsCli(server, ["micro", "info", "sessionbridge", "--json"])) as {
        info: {
          name: string;
          endpoints: {
            name: string;
            subject: string;
            queue_group: string;
            metadata: Record<string, string>;
          }[];
        };
      };
      expect(info.name).to.equal("sessionbridge");
      const bySubject = new Map(info.endpoints.map((e) => [e.subject, e]));
      const start = bySubject.get("sb.test.lab.v1.Counter.Start");
      expect(start?.queue_group).to.equal("sessionbridge");
      expect(start?.metadata).to.include({
        operation: "/test.lab.v1.Counter/Start",
        request_type: "test.lab.v1.Op",
        response_type: "test.lab.v1.Result",
        starts_session: "true",
        ends_session: "false",
        one_way: "false",
        access: "exclusive",
      });
      expect(bySubject.get("sb.test.lab.v1.Counter.Fire")?.metadata.one_way).to.equal("true");
      expect(bySubject.get("sb.test.lab.v1.Counter.Finish")?.metadata.ends_session).to.equal("true");
      expect(bySubject.get("sb.test.lab.v1.Counter.Peek")?.metadata.access).to.equal("shared");
      expect(bySubject.get("sb.test.lab.v1.Counter.Watch")?.metadata.streaming).to.equal("server");
      expect(bySubject.get("sb.test.lab.v1.Plain.Echo")?.metadata.starts_session).to.equal("false");
      // $SRV.PING answers for the service, as `nats micro ping` shows.
      expect(await natsCli(server, ["micro", "ping", "sessionbridge"])).to.include("sessionbridge");
      const stats = JSON.parse(
        await natsCli(server, ["micro", "stats", "sessionbridge", "--json"]),
      ) as unknown;
      expect(JSON.stringify(stats)).to.include("sb.test.lab.v1.Counter.Start");
    });

    it("S1/S5: protobuf binary by correlation and by sb-session-id, session facts in the reply headers", async () => {
      const started = await client.unary("Counter", "Start", { key: "bin-1", text: "a" });
      expect(started.sessionId).to.match(/^[A-Za-z0-9_-]{22,}$/);
      expect(started.response.session_id).to.equal(started.sessionId);
      expect(started.messageId).to.equal(started.response.message_id);
      const byKey = await client.unary("Counter", "Do", { key: "bin-1", text: "b" });
      expect(byKey.sessionId).to.equal(started.sessionId);
      expect(byKey.response.log).to.deep.equal(["Start:a", "Do:b"]);
      const fault = await expectFault(
        client.unary(
          "Counter",
          "Do",
          { key: "nobody", text: "c" },
          { metadata: { "sb-session-id": "x".repeat(22) } },
        ),
      );
      expect(fault.code).to.equal(Code.NOT_FOUND);
    });

    it("S4: a message for no live session is NOT_FOUND/CORRELATION_ERROR with the services-API headers", async () => {
      const reply = await raw.request(
        "sb.test.lab.v1.Counter.Do",
        new TextEncoder().encode('{"key":"none-1"}'),
        {
          timeout: 10_000,
          headers: jsonHeaders(),
        },
      );
      expect(reply.headers?.get("Nats-Service-Error-Code")).to.equal("404");
      expect(reply.headers?.get("Nats-Service-Error")).to.include("no live session");
      expect(reply.headers?.get("sb-reason")).to.equal("CORRELATION_ERROR");
      const status = decodeStatus(Buffer.from(reply.headers?.get("sb-status-bin") ?? "", "base64"));
      expect(status.code).to.equal(Code.NOT_FOUND);
      const info = status.details.find((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
      expect(info === undefined ? undefined : decodeErrorInfo(info.value).reason).to.equal(
        "CORRELATION_ERROR",
      );
      expect(reply.data.byteLength).to.equal(0);
    });

    it("S4: malformed JSON is INVALID_ARGUMENT naming the field, and reaches no process", async () => {
      const reply = await raw.request(
        "sb.test.lab.v1.Counter.Start",
        new TextEncoder().encode('{"key":"m-1","delayMs":"soon"}'),
        { timeout: 10_000, headers: jsonHeaders() },
      );
      expect(reply.headers?.get("Nats-Service-Error-Code")).to.equal("400");
      expect(reply.headers?.get("sb-reason")).to.equal("MALFORMED_MESSAGE");
      expect(reply.headers?.get("Nats-Service-Error")).to.include("delayMs");
      expect(harness.lab.deliveries.some((d) => d.key === "m-1")).to.equal(false);
    });

    it("S7/S8: sb-seq gaps and Idempotency-Key replays behave as on gRPC", async () => {
      await client.unary("Counter", "Start", { key: "seq-1" });
      await client.unary("Counter", "Do", { key: "seq-1", text: "one" }, { metadata: { "sb-seq": "1" } });
      const gap = await expectFault(
        client.unary("Counter", "Do", { key: "seq-1", text: "three" }, { metadata: { "sb-seq": "3" } }),
      );
      expect(gap.code).to.equal(Code.FAILED_PRECONDITION);
      expect(gap.reason).to.equal("OUT_OF_SEQUENCE");
      expect(gap.errorMetadata.expected_seq).to.equal("2");
      const first = await client.unary(
        "Counter",
        "Do",
        { key: "seq-1", text: "k" },
        { metadata: { "idempotency-key": "k-1" } },
      );
      const again = await client.unary(
        "Counter",
        "Do",
        { key: "seq-1", text: "k" },
        { metadata: { "idempotency-key": "k-1" } },
      );
      expect(again.messageId).to.equal(first.messageId);
      expect(harness.lab.deliveries.filter((d) => d.key === "seq-1" && d.text === "k")).to.have.length(1);
    });

    it("S15: the deadline travels as remaining ms, custom headers pass, Nats-* and sb-* from the caller do not", async () => {
      const reply = await client.unary(
        "Counter",
        "Start",
        { key: "dl-1" },
        { timeoutMs: 8000, metadata: { "x-tenant": "acme", "nats-msg-id": "m1", "sb-principal": "forged" } },
      );
      const deadline = Number(reply.response.deadline_ms);
      expect(deadline).to.be.greaterThan(0);
      expect(deadline).to.be.at.most(8000);
      expect(reply.response.metadata["x-tenant"]).to.equal("acme");
      expect(reply.response.metadata_keys).to.not.include("nats-msg-id");
      expect(reply.response.principal).to.equal("anonymous");
    });

    it("S15: a malformed sb-timeout-ms is INVALID_ARGUMENT, not ignored", async () => {
      const hdrs = jsonHeaders();
      hdrs.set("sb-timeout-ms", "-5");
      const reply = await raw.request(
        "sb.test.lab.v1.Counter.Start",
        new TextEncoder().encode('{"key":"bad-dl"}'),
        {
          timeout: 10_000,
          headers: hdrs,
        },
      );
      expect(reply.headers?.get("Nats-Service-Error-Code")).to.equal("400");
      expect(harness.lab.deliveries.some((d) => d.key === "bad-dl")).to.equal(false);
    });

    it("S9: a one-way publish with a reply subject is acknowledged once journaled; without one it is delivered too", async () => {
      await client.unary("Counter", "Start", { key: "ow-1" });
      const ack = await raw.request(
        "sb.test.lab.v1.Counter.Fire",
        new TextEncoder().encode('{"key":"ow-1","text":"acked"}'),
        {
          timeout: 10_000,
          headers: jsonHeaders(),
        },
      );
      expect(ack.headers?.get("Nats-Service-Error-Code")).to.equal("");
      expect(ack.headers?.get("sb-session-id")).to.match(/^[A-Za-z0-9_-]{22,}$/);
      const messageId = ack.headers?.get("sb-message-id");
      expect(messageId).to.match(/^[A-Za-z0-9_-]+$/);
      const hdrs = jsonHeaders();
      raw.publish(
        "sb.test.lab.v1.Counter.Fire",
        new TextEncoder().encode('{"key":"ow-1","text":"fire-and-forget"}'),
        {
          headers: hdrs,
        },
      );
      await waitFor(() =>
        harness.lab.deliveries.some((d) => d.key === "ow-1" && d.text === "fire-and-forget"),
      );
      expect(harness.lab.deliveries.find((d) => d.text === "acked")?.messageId).to.equal(messageId);
    });

    it("bidi streaming operations are UNIMPLEMENTED on NATS", async () => {
      const reply = await raw.request("sb.test.lab.v1.Counter.Chat", new TextEncoder().encode("{}"), {
        timeout: 10_000,
        headers: jsonHeaders(),
      });
      expect(reply.headers?.get("Nats-Service-Error-Code")).to.equal("501");
      expect(reply.headers?.get("sb-reason")).to.equal("UNSUPPORTED_ON_STREAM");
    });

    it("a request over maxPayloadBytes is RESOURCE_EXHAUSTED before it is decoded", async () => {
      const reply = await raw.request("sb.test.lab.v1.Counter.Start", new Uint8Array(100 * 1024), {
        timeout: 10_000,
      });
      expect(reply.headers?.get("Nats-Service-Error-Code")).to.equal("429");
    });
  });

  describe("two bridges in one queue group", () => {
    it("each request reaches one of them, never both", async () => {
      const first = await startLabHarness("memory", { adjust: withNats(server.url) });
      try {
        const second = await startLabHarness("memory", { adjust: withNats(server.url) });
        try {
          const sent = 40;
          for (let i = 0; i < sent; i++) {
            const reply = await raw.request(
              "sb.test.lab.v1.Plain.Echo",
              new TextEncoder().encode(`{"key":"q-${i}"}`),
              { timeout: 10_000, headers: jsonHeaders() },
            );
            expect(reply.headers?.get("Nats-Service-Error-Code")).to.equal("");
          }
          const seen = (h: LabHarness): number =>
            h.lab.deliveries.filter((d) => d.key.startsWith("q-")).length;
          expect(seen(first) + seen(second)).to.equal(sent);
          // Both instances answer discovery: `nats micro ls` shows two of service sessionbridge.
          const listed = JSON.parse(await natsCli(server, ["micro", "ls", "--json"])) as { name: string }[];
          expect(listed.filter((s) => s.name === "sessionbridge")).to.have.length(2);
        } finally {
          await second.close();
        }
      } finally {
        await first.close();
      }
    });
  });

  describe("outbound: bridge → nats:// process", () => {
    let harness: LabHarness;
    let process: NatsLabProcess;
    let clients: LabClient[];

    before(async () => {
      process = await startNatsLabProcess(server.url, "lab.counter");
      harness = await startLabHarness("memory", {
        adjust: withNats(server.url, (c) => ({
          ...c,
          processes: [
            ...c.processes.map((p) => ({
              ...p,
              services: p.services.filter((s) => !s.endsWith(".Counter")),
            })),
            {
              name: "nats-counter",
              services: ["test.lab.v1.Counter"],
              location: "nats://lab.counter",
              envelope: false,
            },
          ],
        })),
      });
      clients = [
        createLabClient(createGrpcJsTransport(harness.address)),
        await natsLabClient(server, harness.address),
      ];
    });

    after(async () => {
      for (const c of clients ?? []) await c.close();
      await harness?.close();
      await process?.close();
    });

    for (const [index, from] of ["gRPC → NATS", "NATS → NATS"].entries()) {
      it(`${from}: the process gets the session facts and the deadline as headers, its headers come back`, async () => {
        const client = clients[index] as LabClient;
        const key = `out-${index}`;
        const started = await client.unary<LabResult>(
          "Counter",
          "Start",
          { key, text: "s" },
          {
            timeoutMs: 9000,
            metadata: { "x-trace-me": "yes" },
          },
        );
        expect(started.response.session_id).to.equal(started.sessionId);
        expect(started.response.message_id).to.equal(started.messageId);
        expect(started.response.principal).to.equal("anonymous");
        expect(Number(started.response.deadline_ms)).to.be.within(1, 9000);
        expect(started.response.traceparent).to.match(/^00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]$/);
        expect(started.response.metadata["x-trace-me"]).to.equal("yes");
        expect(headerOf(started.headers, "x-process-header")).to.equal("nats-lab");
        const next = await client.unary<LabResult>("Counter", "Do", { key, text: "t" });
        expect(next.response.log).to.deep.equal(["s", "t"]);
        expect(process.deliveries.filter((d) => d.key === key).map((d) => d.subject)).to.deep.equal([
          "lab.counter.Start",
          "lab.counter.Do",
        ]);
      });

      it(`${from}: a process fault keeps its exact code, reason and details (S14)`, async () => {
        const client = clients[index] as LabClient;
        const key = `fault-${index}`;
        const fault = await expectFault(
          client.unary("Counter", "Start", { key, fail_code: Code.FAILED_PRECONDITION }),
        );
        expect(fault.code).to.equal(Code.FAILED_PRECONDITION);
        expect(fault.message).to.equal("lab fault 9");
        expect(fault.reason).to.equal("LAB_FAULT");
        expect(fault.errorMetadata.key).to.equal(key);
        const detail = fault.details.find((d) => d.typeUrl === LAB_DETAIL.typeUrl);
        expect(detail === undefined ? undefined : [...detail.value]).to.deep.equal([...LAB_DETAIL.value]);
      });

      it(`${from}: a foreign services-API error maps by gRPC's HTTP table (404 → UNIMPLEMENTED)`, async () => {
        const client = clients[index] as LabClient;
        const fault = await expectFault(
          client.unary("Counter", "Start", { key: `foreign-${index}`, text: "foreign", fail_code: 404 }),
        );
        expect(fault.code).to.equal(Code.UNIMPLEMENTED);
        expect(fault.message).to.equal("no such thing here");
      });
    }

    it("a reply the bridge cannot write as JSON still answers the NATS caller, with a fault", async () => {
      const reply = await raw.request(
        "sb.test.lab.v1.Counter.Start",
        new TextEncoder().encode('{"key":"garbage-1","text":"garbage"}'),
        { timeout: 10_000, headers: jsonHeaders() },
      );
      expect(reply.headers?.get("Nats-Service-Error-Code")).to.equal("500");
      expect(reply.headers?.get("sb-reason")).to.equal("PROCESS_FAULT");
    });

    it("reply headers a gRPC caller cannot carry are dropped, the reply still arrives", async () => {
      const reply = await (clients[0] as LabClient).unary<LabResult>("Counter", "Start", {
        key: "odd-1",
        text: "odd-headers",
      });
      expect(reply.response.key).to.equal("odd-1");
      expect(headerOf(reply.headers, "x-process-header")).to.equal("nats-lab");
      expect(headerOf(reply.headers, "x-utf8")).to.equal(undefined);
    });

    it("a process at nats://…?codec=json gets protobuf JSON and its JSON reply reaches a gRPC caller as binary", async () => {
      const jsonProcess = await startNatsLabProcess(server.url, "lab.json");
      const bridge = await startLabHarness("memory", {
        adjust: withNats(server.url, (c) => ({
          ...c,
          listeners: { ...c.listeners, nats: { ...natsSettings(server.url), prefix: "json-bridge" } },
          processes: [
            {
              name: "json-counter",
              services: ["test.lab.v1.Counter"],
              location: "nats://lab.json?codec=json",
              envelope: false,
            },
          ],
        })),
      });
      const client = createLabClient(createGrpcJsTransport(bridge.address));
      try {
        const reply = await client.unary<LabResult>("Counter", "Start", { key: "json-1", text: "j" });
        expect(reply.response.key).to.equal("json-1");
        expect(reply.response.session_id).to.equal(reply.sessionId);
        expect(reply.response.log).to.deep.equal(["j"]);
        const seen = jsonProcess.deliveries.find((d) => d.key === "json-1");
        expect(seen?.headers["content-type"]).to.equal("application/json");
      } finally {
        await client.close();
        await bridge.close();
        await jsonProcess.close();
      }
    });

    it("no responders on the process subject is UNAVAILABLE (retryable)", async () => {
      const lonely = await startLabHarness("memory", {
        adjust: withNats(server.url, (c) => ({
          ...c,
          listeners: { ...c.listeners, nats: { ...natsSettings(server.url), prefix: "lonely" } },
          processes: [
            {
              name: "nobody",
              services: ["test.lab.v1.Plain"],
              location: "nats://nobody.home",
              envelope: false,
            },
          ],
        })),
      });
      try {
        const client = createLabClient(createGrpcJsTransport(lonely.address));
        try {
          const fault = await expectFault(client.unary("Plain", "Echo", { key: "x" }));
          expect(fault.code).to.equal(Code.UNAVAILABLE);
          expect(fault.reason).to.equal("PROCESS_UNAVAILABLE");
        } finally {
          await client.close();
        }
      } finally {
        await lonely.close();
      }
    });
  });
});

function jsonHeaders() {
  const hdrs = natsHeaders();
  hdrs.set("Content-Type", "application/json");
  return hdrs;
}
