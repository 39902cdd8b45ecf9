import http from "node:http";
import type { AddressInfo } from "node:net";
import * as grpc from "@grpc/grpc-js";
import { connect, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { expect } from "chai";
import { connectCodeName } from "../../../adapters/http/connect-error.js";
import { createJsonCodec } from "../../../bridge/codec/json-codec.js";
import { loadBridgeSetup } from "../../../bridge/config/check-config.js";
import type { NatsConfig } from "../../../bridge/config/config.js";
import type { ContractSet } from "../../../bridge/contracts/contract.js";
import type { ErrorDetail } from "../../../bridge/errors/bridge-error.js";
import { Code, codeName } from "../../../bridge/errors/code.js";
import { httpStatusOf } from "../../../bridge/errors/http-status.js";
import { decodeStatus, encodeErrorInfo, encodeStatus } from "../../../bridge/errors/rich-status.js";
import { type BridgeRuntime, startBridgeRuntime } from "../../../cli/bridge-runtime.js";
import { LAB_CONFIG } from "../../support/lab-harness.js";
import { type NatsServerFixture, startNatsServer } from "../../support/nats-server.js";
import { type PassthroughServer, startPassthroughServer } from "../../support/passthrough-server.js";

/**
 * One fault model (S14) and one propagation model (S15) across every inbound × outbound
 * pair of transports: gRPC, HTTP and NATS in, gRPC, HTTP and NATS out (nine pairs). Each of the seventeen codes
 * travels with a message holding a tab, CR/LF, BMP and non-BMP characters and with the
 * process's own error details; code, reason, message and details must arrive unchanged.
 */
const ECHO = "/test.lab.v1.Plain/Echo";
// Leading and trailing spaces too: an HTTP field value may not carry them unencoded.
const MESSAGE = " tab\there\r\nnext line: Ünïcödé ✓ — 😀 𝄞 end ";
const CUSTOM_DETAIL: ErrorDetail = {
  typeUrl: "type.googleapis.com/test.lab.v1.Result",
  value: new Uint8Array([0x0a, 0x03, 0x6b, 0x65, 0x79]),
};
const DETAILS: readonly ErrorDetail[] = [
  encodeErrorInfo({ reason: "LAB_FAULT", domain: "lab.example", metadata: { where: "lab" } }),
  CUSTOM_DETAIL,
];
const ALL_CODES: readonly Code[] = Array.from({ length: 17 }, (_, i) => i as Code);

type Transport = "grpc" | "http" | "nats";
const TRANSPORTS: readonly Transport[] = ["grpc", "http", "nats"];

interface Outcome {
  readonly code: Code;
  readonly message: string;
  readonly details: readonly ErrorDetail[];
  readonly payload: Uint8Array | undefined;
  readonly echoCustom: string | undefined;
  readonly remainingMs: number | undefined;
}

const comparable = (details: readonly ErrorDetail[]) =>
  details.map((d) => ({ typeUrl: d.typeUrl, value: Buffer.from(d.value).toString("hex") }));

describe("one fault model across every inbound × outbound pair (S14, S15)", function () {
  this.timeout(60_000);
  let contracts: ContractSet;
  let grpcProcess: PassthroughServer;
  let httpProcess: http.Server;
  let natsServer: NatsServerFixture;
  let natsProcess: NatsConnection;
  let natsClient: NatsConnection;
  const bridges = new Map<Transport, BridgeRuntime>();
  const failCodeOf = (payload: Uint8Array): number => {
    const op = JSON.parse(createJsonCodec(contracts).toJson("test.lab.v1.Op", payload)) as {
      failCode?: number;
    };
    return op.failCode ?? 0;
  };

  before(async () => {
    const setup = loadBridgeSetup({ file: LAB_CONFIG, overrides: { grpc: "127.0.0.1:0", store: "memory" } });
    contracts = setup.contracts;
    grpcProcess = await startPassthroughServer({
      [ECHO]: {
        kind: "unary",
        handler: (call, callback) => {
          const code = failCodeOf(call.request);
          const headers = new grpc.Metadata();
          headers.set("x-echo-custom", String(call.metadata.get("x-custom")[0] ?? ""));
          const deadline = call.getDeadline();
          const remaining = (deadline instanceof Date ? deadline.getTime() : Number(deadline)) - Date.now();
          headers.set("x-echo-remaining-ms", String(Math.round(remaining)));
          call.sendMetadata(headers);
          if (code === 0) {
            callback(null, call.request);
            return;
          }
          const trailers = new grpc.Metadata();
          trailers.set(
            "grpc-status-details-bin",
            Buffer.from(encodeStatus({ code, message: MESSAGE, details: DETAILS })),
          );
          callback({ code, details: MESSAGE, metadata: trailers, name: "", message: MESSAGE });
        },
      },
    });
    httpProcess = http.createServer((request, response) => {
      const chunks: Buffer[] = [];
      request.on("data", (c: Buffer) => chunks.push(c));
      request.on("end", () => {
        const body = Buffer.concat(chunks);
        const code = failCodeOf(body);
        const headers: http.OutgoingHttpHeaders = {
          "x-echo-custom": String(request.headers["x-custom"] ?? ""),
          "x-echo-remaining-ms": String(request.headers["connect-timeout-ms"] ?? "-1"),
        };
        if (request.url !== ECHO || request.headers["content-type"] !== "application/proto") {
          response.writeHead(404).end();
        } else if (code === 0) {
          response.writeHead(200, { ...headers, "content-type": "application/proto" }).end(body);
        } else {
          const error = {
            code: connectCodeName(code),
            message: MESSAGE,
            details: DETAILS.map((d) => ({
              type: d.typeUrl.replace("type.googleapis.com/", ""),
              value: Buffer.from(d.value).toString("base64"),
            })),
          };
          response.writeHead(httpStatusOf(code), { ...headers, "content-type": "application/json" });
          response.end(JSON.stringify(error));
        }
      });
    });
    await new Promise<void>((resolve) => httpProcess.listen(0, "127.0.0.1", resolve));
    // A NATS process as DESIGN §3 describes one: faults in the services API's headers plus
    // sb-status-bin with the exact status; its response headers echo what it received.
    natsServer = await startNatsServer();
    natsProcess = await connect({ servers: natsServer.url });
    natsClient = await connect({ servers: natsServer.url });
    natsProcess.subscribe("fault.lab.Echo", {
      callback: (_error, msg) => {
        const code = failCodeOf(msg.data);
        const reply = natsHeaders();
        reply.set("x-echo-custom", msg.headers?.get("x-custom") ?? "");
        reply.set("x-echo-remaining-ms", msg.headers?.get("sb-timeout-ms") ?? "-1");
        if (code !== 0) {
          reply.set("Nats-Service-Error-Code", String(httpStatusOf(code)));
          reply.set("Nats-Service-Error", "see sb-status-bin");
          reply.set(
            "sb-status-bin",
            Buffer.from(encodeStatus({ code, message: MESSAGE, details: DETAILS })).toString("base64"),
          );
          msg.respond(new Uint8Array(0), { headers: reply });
          return;
        }
        msg.respond(msg.data, { headers: reply });
      },
    });
    await natsProcess.flush();
    const locations: Record<Transport, string> = {
      grpc: `grpc://127.0.0.1:${grpcProcess.port}`,
      http: `http://127.0.0.1:${(httpProcess.address() as AddressInfo).port}`,
      nats: "nats://fault.lab",
    };
    for (const out of TRANSPORTS) {
      bridges.set(
        out,
        await startBridgeRuntime({
          contracts,
          config: {
            ...setup.config,
            listeners: {
              grpc: "127.0.0.1:0",
              http: "127.0.0.1:0",
              nats: natsSettings(natsServer.url, `sb-${out}`),
            },
            processes: [
              {
                name: `fault-${out}`,
                services: ["test.lab.v1.Plain"],
                location: locations[out],
                envelope: false,
              },
            ],
          },
        }),
      );
    }
  });

  after(async () => {
    for (const runtime of bridges.values()) await runtime.stop(1000);
    await natsClient?.close();
    await natsProcess?.close();
    await natsServer?.stop();
    await grpcProcess?.close();
    httpProcess?.closeAllConnections();
    await new Promise<void>((resolve) => httpProcess?.close(() => resolve()));
  });

  async function callGrpc(runtime: BridgeRuntime, payload: Uint8Array): Promise<Outcome> {
    const client = new grpc.Client(runtime.grpc.address, grpc.credentials.createInsecure());
    try {
      return await new Promise<Outcome>((resolve) => {
        const metadata = new grpc.Metadata();
        metadata.set("x-custom", "custom-value");
        let headers: grpc.Metadata | undefined;
        const call = client.makeUnaryRequest<Buffer, Buffer>(
          ECHO,
          (b) => b,
          (b) => b,
          Buffer.from(payload),
          metadata,
          { deadline: Date.now() + 20_000 },
          (error, reply) => {
            const echoCustom = headers?.get("x-echo-custom")[0]?.toString();
            const remaining = headers?.get("x-echo-remaining-ms")[0];
            const remainingMs = remaining === undefined ? undefined : Number(remaining);
            if (error === null) {
              resolve({ code: Code.OK, message: "", details: [], payload: reply, echoCustom, remainingMs });
              return;
            }
            const raw = error.metadata.get("grpc-status-details-bin")[0];
            const status = raw === undefined ? undefined : decodeStatus(raw as Buffer);
            resolve({
              code: error.code as number as Code,
              message: error.details,
              details: status?.details ?? [],
              payload: undefined,
              echoCustom,
              remainingMs,
            });
          },
        );
        call.on("metadata", (m) => {
          headers = m;
        });
      });
    } finally {
      client.close();
    }
  }

  async function callHttp(runtime: BridgeRuntime, payload: Uint8Array): Promise<Outcome> {
    const response = await fetch(`http://${runtime.http?.address}${ECHO}`, {
      method: "POST",
      headers: {
        "content-type": "application/proto",
        "connect-protocol-version": "1",
        "connect-timeout-ms": "20000",
        "x-custom": "custom-value",
      },
      body: payload,
    });
    const echoCustom = response.headers.get("x-echo-custom") ?? undefined;
    const remaining = response.headers.get("x-echo-remaining-ms");
    const remainingMs = remaining === null ? undefined : Number(remaining);
    const body = Buffer.from(await response.arrayBuffer());
    if (response.status === 200) {
      return { code: Code.OK, message: "", details: [], payload: body, echoCustom, remainingMs };
    }
    const error = JSON.parse(body.toString("utf8")) as {
      code: string;
      message: string;
      details?: { type: string; value: string }[];
    };
    const code = ALL_CODES.find((c) => connectCodeName(c) === error.code) ?? Code.UNKNOWN;
    expect(response.status, codeName(code)).to.equal(httpStatusOf(code));
    return {
      code,
      message: error.message,
      details: (error.details ?? []).map((d) => ({
        typeUrl: `type.googleapis.com/${d.type}`,
        value: new Uint8Array(Buffer.from(d.value, "base64")),
      })),
      payload: undefined,
      echoCustom,
      remainingMs,
    };
  }

  /** A NATS request to the bridge's listener of `outbound`'s bridge (prefix sb-<outbound>). */
  async function callNats(outbound: Transport, payload: Uint8Array): Promise<Outcome> {
    const request = natsHeaders();
    request.set("x-custom", "custom-value");
    request.set("sb-timeout-ms", "20000");
    const reply = await natsClient.request(`sb-${outbound}.test.lab.v1.Plain.Echo`, payload, {
      timeout: 20_000,
      headers: request,
    });
    const echoCustom = reply.headers?.get("x-echo-custom") || undefined;
    const remaining = reply.headers?.get("x-echo-remaining-ms");
    const remainingMs = remaining === undefined || remaining === "" ? undefined : Number(remaining);
    const raw = reply.headers?.get("sb-status-bin") ?? "";
    if (raw === "")
      return { code: Code.OK, message: "", details: [], payload: reply.data, echoCustom, remainingMs };
    const status = decodeStatus(Buffer.from(raw, "base64"));
    // The services API's header carries the code's HTTP number from the one table (DESIGN §3).
    expect(reply.headers?.get("Nats-Service-Error-Code"), codeName(status.code as Code)).to.equal(
      String(httpStatusOf(status.code as Code)),
    );
    return {
      code: status.code as Code,
      message: status.message,
      details: status.details,
      payload: undefined,
      echoCustom,
      remainingMs,
    };
  }

  const call = (inbound: Transport, outbound: Transport, payload: Uint8Array): Promise<Outcome> => {
    const runtime = bridges.get(outbound) as BridgeRuntime;
    if (inbound === "grpc") return callGrpc(runtime, payload);
    if (inbound === "http") return callHttp(runtime, payload);
    return callNats(outbound, payload);
  };

  for (const inbound of TRANSPORTS) {
    for (const outbound of TRANSPORTS) {
      it(`${inbound} in, ${outbound} out: all seventeen codes, message and details unchanged; metadata and deadline cross`, async () => {
        const json = createJsonCodec(contracts);
        for (const code of ALL_CODES) {
          const payload = json.toBinary("test.lab.v1.Op", JSON.stringify({ key: "m", failCode: code }));
          const outcome = await call(inbound, outbound, payload);
          const what = `${inbound}→${outbound} ${codeName(code)}`;
          expect(outcome.code, what).to.equal(code);
          // S15: custom metadata reaches the process and its response headers come back,
          // on success and on faults; the deadline arrives as remaining time.
          expect(outcome.echoCustom, what).to.equal("custom-value");
          expect(outcome.remainingMs, what).to.be.greaterThan(0).and.at.most(20_000);
          if (code === Code.OK) {
            expect(Buffer.from(outcome.payload ?? []).equals(Buffer.from(payload)), what).to.equal(true);
          } else {
            expect(outcome.message, what).to.equal(MESSAGE);
            expect(comparable(outcome.details), what).to.deep.equal(comparable(DETAILS));
          }
        }
      });
    }
  }
});

/** The bridge's NATS listener on the fixture's server, with its own subject prefix. */
function natsSettings(url: string, prefix: string): NatsConfig {
  return {
    url,
    prefix,
    queue: prefix,
    token: undefined,
    user: undefined,
    password: undefined,
    credsFile: undefined,
    nkeyFile: undefined,
    tls: undefined,
    intake: [],
  };
}
