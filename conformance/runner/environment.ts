import { mkdirSync, mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import {
  createSessionServiceClient,
  type SessionServiceClient,
} from "../../sdk/ts/session-service-client.js";
import { type BridgeProcess, startBridgeProcess, writeBridgeConfig } from "./bridge-process.js";
import { CaseSkip } from "./case-executor.js";
import type { Mode } from "./case-schema.js";
import { createConnectLabTransport } from "./connect-lab-transport.js";
import { createGrpcLabTransport } from "./grpc-lab-transport.js";
import type { LabTransport, TransportName } from "./lab-wire.js";
import { createNatsLabTransport } from "./nats-lab-transport.js";
import {
  type Forwarder,
  type ServiceProcess,
  startForwarder,
  startServiceProcess,
} from "./service-process.js";

export interface EnvironmentSpec {
  readonly root: string;
  readonly command: readonly string[];
  readonly mode: Mode;
  /** Bridged: how the bridge reaches the service. */
  readonly outbound: TransportName | undefined;
  /** Transports the service is asked to serve. */
  readonly serviceTransports: readonly TransportName[];
  readonly timeScale: number;
  readonly natsUrl: string | undefined;
  /** Unique per environment: NATS subject prefixes and temp dirs. */
  readonly tag: string;
}

/**
 * What cases of one (mode, outbound, time scale) run against: the service under test and,
 * bridged, a bridge in front of it. Cases share it (their correlation values are
 * namespaced); exclusive cases get it alone.
 */
export interface Environment {
  readonly spec: EnvironmentSpec;
  /** A lab client for the given inbound transport (direct: the service's; bridged: the bridge's). */
  transport(inbound: TransportName): Promise<LabTransport>;
  /** The bridge's SessionService (bridged only). */
  sessions(): SessionServiceClient | undefined;
  killService(): Promise<void>;
  killBridge(): Promise<void>;
  /** The service's and the bridge's last output, for failure transcripts. */
  logs(): string;
  close(): Promise<void>;
}

/**
 * A service that is already running (`--endpoint grpc://…|http://…|nats://URL/prefix`):
 * direct mode only, and nothing can be killed or restarted.
 */
export function endpointEnvironment(spec: EnvironmentSpec, endpoint: URL): Environment {
  let transport: Promise<LabTransport> | undefined;
  const fail = async () => {
    throw new CaseSkip("a running endpoint cannot be killed and restarted by the runner");
  };
  return {
    spec,
    transport(inbound) {
      if (`${inbound}:` !== endpoint.protocol)
        throw new CaseSkip(`the endpoint speaks ${endpoint.protocol} only`);
      transport ??=
        inbound === "grpc"
          ? Promise.resolve(createGrpcLabTransport(endpoint.host))
          : inbound === "http"
            ? Promise.resolve(createConnectLabTransport(endpoint.href.replace(/\/$/, "")))
            : createNatsLabTransport(`nats://${endpoint.host}`, endpoint.pathname.replace(/^\//, ""));
      return transport;
    },
    sessions: () => undefined,
    killService: fail,
    killBridge: fail,
    logs: () => "",
    async close() {
      await (await transport)?.close();
    },
  };
}

export async function startEnvironment(spec: EnvironmentSpec): Promise<Environment> {
  const dir = mkdtempSync(path.join(os.tmpdir(), `sb-conf-${spec.tag}-`));
  const stateDir = path.join(dir, "service-state");
  mkdirSync(stateDir, { recursive: true });
  const serviceNatsPrefix = `lab-${spec.tag}`;
  const launch = () =>
    startServiceProcess({
      command: spec.command,
      cwd: spec.root,
      settings: {
        stateDir,
        timeScale: spec.timeScale,
        transports: [...spec.serviceTransports],
        natsUrl: spec.natsUrl ?? "",
        natsSubjectPrefix: serviceNatsPrefix,
      },
    });
  let service: ServiceProcess = await launch();
  let forwarder: Forwarder | undefined;
  let bridge: BridgeProcess | undefined;
  let sessionClient: SessionServiceClient | undefined;
  let configFile: string | undefined;
  const transports = new Map<TransportName, LabTransport>();
  const portOf = (address: string) =>
    Number(new URL(address.startsWith("http") ? address : `http://${address}`).port);
  try {
    if (spec.mode === "bridged") {
      const outbound = spec.outbound ?? "grpc";
      let location = service.addresses.nats;
      if (outbound !== "nats") {
        const address = outbound === "grpc" ? service.addresses.grpc : service.addresses.http;
        if (address === "") throw new Error(`the service did not serve ${outbound}`);
        forwarder = await startForwarder(portOf(address));
        location = outbound === "grpc" ? `127.0.0.1:${forwarder.port}` : `http://127.0.0.1:${forwarder.port}`;
      }
      configFile = writeBridgeConfig({
        root: spec.root,
        dir,
        outbound,
        location,
        natsUrl: spec.natsUrl,
        natsPrefix: `sb-${spec.tag}`,
        timeScale: spec.timeScale,
      });
      bridge = await startBridgeProcess(spec.root, configFile);
      sessionClient = createSessionServiceClient(bridge.addresses.grpc, { deadlineMs: 10_000 });
    }
  } catch (error) {
    await service.stop();
    await forwarder?.close();
    throw error;
  }
  const dropTransports = async () => {
    const open = [...transports.values()];
    transports.clear();
    await Promise.allSettled(open.map((t) => t.close()));
  };
  return {
    spec,
    async transport(inbound) {
      const known = transports.get(inbound);
      if (known !== undefined) return known;
      let made: LabTransport;
      if (bridge !== undefined) {
        const a = bridge.addresses;
        made =
          inbound === "grpc"
            ? createGrpcLabTransport(a.grpc)
            : inbound === "http"
              ? createConnectLabTransport(a.http)
              : await createNatsLabTransport(spec.natsUrl ?? "", a.natsPrefix ?? "");
      } else {
        const a = service.addresses;
        made =
          inbound === "grpc"
            ? createGrpcLabTransport(a.grpc)
            : inbound === "http"
              ? createConnectLabTransport(a.http)
              : await createNatsLabTransport(spec.natsUrl ?? "", a.nats);
      }
      transports.set(inbound, made);
      return made;
    },
    sessions: () => sessionClient,
    async killService() {
      await service.kill();
      service = await launch();
      if (bridge === undefined) await dropTransports();
      else if (forwarder !== undefined) {
        const address = spec.outbound === "grpc" ? service.addresses.grpc : service.addresses.http;
        forwarder.retarget(portOf(address));
      }
    },
    async killBridge() {
      if (bridge === undefined || configFile === undefined) return;
      await bridge.kill();
      await dropTransports();
      sessionClient?.close();
      bridge = await startBridgeProcess(spec.root, configFile);
      sessionClient = createSessionServiceClient(bridge.addresses.grpc, { deadlineMs: 10_000 });
    },
    logs() {
      return `service stderr:\n${service.stderr()}\n${bridge === undefined ? "" : `bridge output:\n${bridge.output()}`}`;
    },
    async close() {
      await dropTransports();
      sessionClient?.close();
      await bridge?.stop();
      await service.stop();
      await forwarder?.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
