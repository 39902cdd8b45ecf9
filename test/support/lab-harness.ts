import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { loadBridgeSetup } from "../../bridge/config/check-config.js";
import type { BridgeConfig, NatsConfig } from "../../bridge/config/config.js";
import { decodeErrorInfo, decodeStatus, ERROR_INFO_TYPE_URL } from "../../bridge/errors/rich-status.js";
import type { Clock } from "../../bridge/util/clock.js";
import { type BridgeRuntime, startBridgeRuntime } from "../../cli/bridge-runtime.js";
import {
  createSessionServiceClient,
  type SessionServiceClient as SessionClient,
} from "../../sdk/ts/session-service-client.js";
import { createConnectTransport } from "./connect-transport.js";
import { startGrpcGoTransport } from "./grpc-go-transport.js";
import { createGrpcJsTransport } from "./grpc-js-transport.js";
import { type HttpRelay, startHttpRelay } from "./http-relay.js";
import { type ClientKind, createLabClient, type LabClient, type LabService } from "./lab-client.js";
import { type LabProcess, loadLabPackage, startLabProcess } from "./lab-process.js";
import { startNatsRelay } from "./nats-relay.js";
import { type NatsServerFixture, startNatsServer } from "./nats-server.js";
import { startNatsLabTransport } from "./nats-transport.js";
import { repoRoot } from "./repo-root.js";

export type StoreKind = "memory" | "sqlite";

/** Every scenario runs against each store (DESIGN §5). */
export const STORE_KINDS: readonly StoreKind[] = ["memory", "sqlite"];

/** Every client the scenarios run through: gRPC libraries and Connect over HTTP. */
export const CLIENT_KINDS: readonly ClientKind[] = ["grpc-js", "grpc-go", "connect"];

/**
 * The gRPC clients plus a NATS client: the rule suites run with NATS inbound too (the
 * harness then starts a nats-server and the bridge's NATS listener). Streams and the
 * SessionService, which NATS does not carry, go through grpc-js.
 */
export const RULE_CLIENT_KINDS: readonly ClientKind[] = [...CLIENT_KINDS, "nats"];

export const LAB_CONFIG = path.join(repoRoot(), "test/fixtures/lab/sessionbridge.yaml");

/** A bridge in front of the lab process, reached through one client library. */
export interface LabHarness {
  readonly runtime: BridgeRuntime;
  readonly lab: LabProcess;
  readonly address: string;
  /** The lab contracts and SessionService through the chosen client. */
  readonly client: LabClient;
  /** grpc-js clients of the lab services, for scenarios that need grpc-js's own API. */
  readonly clients: GrpcJsClients;
  /** The TS SDK's SessionService client (grpc-js). */
  readonly sessions: SessionClient;
  readonly config: BridgeConfig;
  /** Stops the bridge only (the lab process keeps running), for restart tests. */
  stopBridge(): Promise<void>;
  /** Starts the bridge again on the same store and port-0 address. */
  restartBridge(): Promise<void>;
  close(): Promise<void>;
}

/**
 * How the bridge reaches the lab process: gRPC, or NATS or HTTP with the Connect protocol
 * (each through a relay to the same process).
 */
export type OutboundKind = "grpc" | "nats" | "http";

export interface HarnessOptions {
  /** The client library the harness's client uses; grpc-js by default. */
  readonly client?: ClientKind;
  /** How the bridge reaches the lab process; gRPC by default. */
  readonly outbound?: OutboundKind;
  /** Session time for the engine (S12): a ManualClock lets tests move it. */
  readonly clock?: Clock;
  /** Adjusts the loaded configuration (for example shorter retry delays). */
  readonly adjust?: (config: BridgeConfig) => BridgeConfig;
}

/** A LabClient of the given kind for a bridge; Connect goes to its HTTP listener at `httpAddress`. */
export function openLabClient(kind: ClientKind, address: string, httpAddress?: string): LabClient {
  if (kind === "nats")
    throw new Error("a NATS lab client needs the harness's NATS server: use startLabHarness");
  if (kind === "connect") {
    if (httpAddress === undefined) throw new Error("the connect lab client needs the bridge's HTTP address");
    return createLabClient(createConnectTransport(httpAddress));
  }
  return createLabClient(kind === "grpc-go" ? startGrpcGoTransport(address) : createGrpcJsTransport(address));
}

export async function startLabHarness(store: StoreKind, options: HarnessOptions = {}): Promise<LabHarness> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "sb-lab-"));
  const kind = options.client ?? "grpc-js";
  const outbound = options.outbound ?? "grpc";
  const nats: NatsServerFixture | undefined =
    kind === "nats" || outbound === "nats" ? await startNatsServer() : undefined;
  const lab = await startLabProcess();
  const relay =
    outbound === "nats" && nats !== undefined ? await startNatsRelay(nats.url, "lab", lab.port) : undefined;
  const httpRelay: HttpRelay | undefined = outbound === "http" ? await startHttpRelay(lab.port) : undefined;
  const setup = loadBridgeSetup({
    file: LAB_CONFIG,
    overrides: {
      grpc: "127.0.0.1:0",
      store: store === "memory" ? "memory" : `sqlite:${path.join(dir, "sessions.db")}`,
    },
  });
  let config: BridgeConfig = {
    ...setup.config,
    processes: setup.config.processes.map((p) => ({ ...p, location: `grpc://127.0.0.1:${lab.port}` })),
    // The HTTP listener too, for the Connect client and the HTTP tests.
    listeners: { ...setup.config.listeners, http: "127.0.0.1:0" },
  };
  if (nats !== undefined) {
    config = { ...config, listeners: { ...config.listeners, nats: labNatsConfig(nats.url) } };
  }
  if (relay !== undefined) {
    // One nats:// process per service, each on its own subject prefix (docs/nats.md).
    config = {
      ...config,
      processes: config.processes.flatMap((p) =>
        p.services.map((service) => ({
          ...p,
          name: `${p.name}-${service.slice(service.lastIndexOf(".") + 1)}`,
          services: [service],
          location: `nats://lab.${service.slice(service.lastIndexOf(".") + 1)}`,
        })),
      ),
    };
  }
  if (httpRelay !== undefined) {
    config = { ...config, processes: config.processes.map((p) => ({ ...p, location: httpRelay.url })) };
  }
  if (options.adjust !== undefined) config = options.adjust(config);
  const open = async (address: string, httpAddress?: string): Promise<LabClient> =>
    nats === undefined
      ? openLabClient(kind, address, httpAddress)
      : createLabClient(
          await startNatsLabTransport({
            url: nats.url,
            prefix: "sb",
            fallback: createGrpcJsTransport(address),
          }),
        );
  const start = () =>
    startBridgeRuntime({
      config,
      contracts: setup.contracts,
      ...(options.clock === undefined ? {} : { clock: options.clock }),
    });
  // A bridge that fails to start (a bad config under test) must not leave the lab process,
  // relays or NATS server running: they would keep the test runner from exiting.
  const release = async (): Promise<void> => {
    await relay?.close();
    await httpRelay?.close();
    await lab.close();
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  };
  let runtime: BridgeRuntime;
  try {
    runtime = await start();
  } catch (error) {
    await release();
    throw error;
  }
  let client = await open(runtime.grpc.address, runtime.http?.address);
  let native = openGrpcJsClients(runtime.grpc.address);

  return {
    get runtime() {
      return runtime;
    },
    lab,
    get address() {
      return runtime.grpc.address;
    },
    get client() {
      return client;
    },
    get clients() {
      return native.clients;
    },
    get sessions() {
      return native.sessions;
    },
    config,
    async stopBridge() {
      closeGrpcJsClients(native);
      await client.close();
      await runtime.stop(1000);
    },
    async restartBridge() {
      runtime = await start();
      client = await open(runtime.grpc.address, runtime.http?.address);
      native = openGrpcJsClients(runtime.grpc.address);
    },
    async close() {
      closeGrpcJsClients(native);
      await client.close();
      await runtime.stop(1000);
      await release();
    },
  };
}

/** The bridge's NATS settings in the lab: the harness's server, prefix "sb". */
export function labNatsConfig(url: string): NatsConfig {
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

type GrpcJsClients = Record<LabService, grpc.Client>;

function openGrpcJsClients(address: string): { clients: GrpcJsClients; sessions: SessionClient } {
  const pkg = loadLabPackage() as unknown as {
    test?: { lab?: { v1?: Record<string, grpc.ServiceClientConstructor> } };
  };
  const lab = pkg.test?.lab?.v1 ?? {};
  const make = (name: LabService): grpc.Client => {
    const ctor = lab[name];
    if (ctor === undefined) throw new Error(`no client for ${name}`);
    return new ctor(address, grpc.credentials.createInsecure());
  };
  return {
    clients: {
      Counter: make("Counter"),
      Unique: make("Unique"),
      Line: make("Line"),
      Solo: make("Solo"),
      Plain: make("Plain"),
    },
    sessions: createSessionServiceClient(address),
  };
}

function closeGrpcJsClients(opened: { clients: GrpcJsClients; sessions: SessionClient }): void {
  for (const c of Object.values(opened.clients)) c.close();
  opened.sessions.close();
}

/** One run of a suite: a store, a client library and how the bridge reaches the process. */
export interface LabTarget {
  readonly store: StoreKind;
  readonly client: ClientKind;
  readonly outbound?: OutboundKind;
  /** ", sqlite store, grpc-go client", for suite titles. */
  readonly title: string;
}

/** Every store × every given client, for suites that loop their scenarios over them. */
export function labTargets(clients: readonly ClientKind[] = CLIENT_KINDS): LabTarget[] {
  return STORE_KINDS.flatMap((store) =>
    clients.map((client) => ({ store, client, title: `${store} store, ${client} client` })),
  );
}

/**
 * The rule suites' targets: every client with gRPC outbound, plus a gRPC client with the
 * lab process reached over NATS (the NATS outbound adapter in front of it), and a Connect
 * client with the lab process reached over HTTP (HTTP in, HTTP out).
 */
export function ruleTargets(): LabTarget[] {
  return [
    ...labTargets(RULE_CLIENT_KINDS),
    ...STORE_KINDS.map((store) => ({
      store,
      client: "grpc-js" as const,
      outbound: "nats" as const,
      title: `${store} store, grpc-js client, NATS outbound`,
    })),
    ...STORE_KINDS.map((store) => ({
      store,
      client: "connect" as const,
      outbound: "http" as const,
      title: `${store} store, Connect client, HTTP outbound`,
    })),
  ];
}

/**
 * Starts a harness for the enclosing describe() and closes it after; the getter returns
 * it inside tests.
 */
export function useLabHarness(
  target: LabTarget,
  options: Omit<HarnessOptions, "client"> = {},
): () => LabHarness {
  let harness: LabHarness | undefined;
  before(async () => {
    harness = await startLabHarness(target.store, {
      ...options,
      client: target.client,
      ...(target.outbound === undefined ? {} : { outbound: target.outbound }),
    });
  });
  after(async () => {
    await harness?.close();
  });
  return () => {
    if (harness === undefined) throw new Error("the lab harness is not running");
    return harness;
  };
}

/** The ErrorInfo reason of a gRPC failure (S14), or undefined if it carried none. */
export function reasonOf(error: grpc.ServiceError): string | undefined {
  const raw = error.metadata?.get("grpc-status-details-bin")[0];
  if (raw === undefined || typeof raw === "string") return undefined;
  const status = decodeStatus(raw);
  const info = status.details.find((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
  return info === undefined ? undefined : decodeErrorInfo(info.value).reason;
}

export function errorInfoOf(error: grpc.ServiceError): Readonly<Record<string, string>> {
  const raw = error.metadata?.get("grpc-status-details-bin")[0];
  if (raw === undefined || typeof raw === "string") return {};
  const info = decodeStatus(raw).details.find((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
  return info === undefined ? {} : decodeErrorInfo(info.value).metadata;
}
