import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { loadBridgeSetup } from "../../bridge/config/check-config.js";
import type { BridgeConfig } from "../../bridge/config/config.js";
import { decodeErrorInfo, decodeStatus, ERROR_INFO_TYPE_URL } from "../../bridge/errors/rich-status.js";
import { type BridgeRuntime, startBridgeRuntime } from "../../cli/bridge-runtime.js";
import {
  createSessionServiceClient,
  type SessionServiceClient as SessionClient,
} from "../../sdk/ts/session-service-client.js";
import { type LabProcess, loadLabPackage, startLabProcess } from "./lab-process.js";
import { repoRoot } from "./repo-root.js";

export type StoreKind = "memory" | "sqlite";

/** Every scenario runs against each store (DESIGN §5). */
export const STORE_KINDS: readonly StoreKind[] = ["memory", "sqlite"];

export const LAB_CONFIG = path.join(repoRoot(), "test/fixtures/lab/sessionbridge.yaml");

type Clients = Record<"Counter" | "Unique" | "Line" | "Solo" | "Plain", grpc.Client>;

/** A bridge in front of the lab process, with real clients built from the .proto files. */
export interface LabHarness {
  readonly runtime: BridgeRuntime;
  readonly lab: LabProcess;
  readonly address: string;
  readonly clients: Clients;
  readonly sessions: SessionClient;
  readonly config: BridgeConfig;
  /** Stops the bridge only (the lab process keeps running), for restart tests. */
  stopBridge(): Promise<void>;
  /** Starts the bridge again on the same store and port-0 address. */
  restartBridge(): Promise<void>;
  close(): Promise<void>;
}

export interface HarnessOptions {
  /** Adjusts the loaded configuration (for example shorter retry delays). */
  readonly adjust?: (config: BridgeConfig) => BridgeConfig;
}

export async function startLabHarness(store: StoreKind, options: HarnessOptions = {}): Promise<LabHarness> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "sb-lab-"));
  const lab = await startLabProcess();
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
  };
  if (options.adjust !== undefined) config = options.adjust(config);
  let runtime = await startBridgeRuntime({ config, contracts: setup.contracts });
  let opened = openClients(runtime.grpc.address);

  const harness: LabHarness = {
    get runtime() {
      return runtime;
    },
    lab,
    get address() {
      return runtime.grpc.address;
    },
    get clients() {
      return opened.clients;
    },
    get sessions() {
      return opened.sessions;
    },
    config,
    async stopBridge() {
      closeClients(opened);
      await runtime.stop(1000);
    },
    async restartBridge() {
      runtime = await startBridgeRuntime({ config, contracts: setup.contracts });
      opened = openClients(runtime.grpc.address);
    },
    async close() {
      closeClients(opened);
      await runtime.stop(1000);
      await lab.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return harness;
}

function openClients(address: string): { clients: Clients; sessions: SessionClient } {
  const pkg = loadLabPackage() as unknown as {
    test?: { lab?: { v1?: Record<string, grpc.ServiceClientConstructor> } };
  };
  const lab = pkg.test?.lab?.v1 ?? {};
  const make = (name: keyof Clients): grpc.Client => {
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

function closeClients(opened: { clients: Clients; sessions: SessionClient }): void {
  for (const client of Object.values(opened.clients)) client.close();
  opened.sessions.close();
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
