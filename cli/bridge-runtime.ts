import type { NatsConnection } from "@nats-io/transport-node";
import type { GrpcListener } from "../adapters/grpc/grpc-listener.js";
import { startGrpcListener } from "../adapters/grpc/grpc-listener.js";
import { createGrpcTransport } from "../adapters/grpc/h2-outbound.js";
import { reflectionDescriptors } from "../adapters/grpc/reflection-root.js";
import { createHttpTransport } from "../adapters/http/connect-outbound.js";
import { type HttpListener, startHttpListener } from "../adapters/http/http-listener.js";
import { connectNats } from "../adapters/nats/nats-connection.js";
import { type NatsListener, startNatsListener } from "../adapters/nats/nats-listener.js";
import { createNatsTransport } from "../adapters/nats/nats-outbound.js";
import type { BridgeConfig } from "../bridge/config/config.js";
import type { ContractSet } from "../bridge/contracts/contract.js";
import { type Bridge, createBridge } from "../bridge/engine/bridge-engine.js";
import { BridgeError } from "../bridge/errors/bridge-error.js";
import { Code } from "../bridge/errors/code.js";
import { Reason } from "../bridge/errors/reason.js";
import type { Listener, ListenerContext } from "../bridge/listener/listener.js";
import { type Logger, silentLogger } from "../bridge/logger.js";
import type { ProcessClient, ProcessTransport } from "../bridge/process/process-client.js";
import { anonymousPrincipals } from "../bridge/security/principal.js";
import { createStore } from "../bridge/store/create-store.js";
import type { Clock } from "../bridge/util/clock.js";
import type { ClusterParts } from "./cluster-runtime.js";

export interface RuntimeOptions {
  readonly config: BridgeConfig;
  readonly contracts: ContractSet;
  readonly logger?: Logger;
  /** Passed to the engine: tests move session time with a ManualClock. */
  readonly clock?: Clock;
}

/** A running bridge: engine, store, process clients and listeners, stopped together. */
export interface BridgeRuntime {
  readonly bridge: Bridge;
  readonly grpc: GrpcListener;
  /** The HTTP listener, when listeners.http is configured. */
  readonly http: HttpListener | undefined;
  /** The NATS listener, when listeners.nats (or --nats) is configured. */
  readonly nats: NatsListener | undefined;
  /** Every inbound adapter started, gRPC first. */
  readonly listeners: readonly Listener[];
  /** Stops listening, lets calls in flight finish (up to graceMs), then closes everything. */
  stop(graceMs?: number): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/**
 * Assembles a bridge from a checked configuration: the one place that knows both the
 * engine and the adapters (adapters depend on bridge/, never the reverse).
 */
export async function startBridgeRuntime(options: RuntimeOptions): Promise<BridgeRuntime> {
  const { config, contracts } = options;
  const logger = options.logger ?? silentLogger;
  const transports: ProcessTransport[] = [
    createGrpcTransport({ maxReplyBytes: config.defaults.maxPayloadBytes }),
    createHttpTransport({ contracts, maxResponseBytes: config.defaults.maxPayloadBytes }),
  ];
  // One NATS connection serves the listener and nats:// processes; closed last.
  const natsConfig = config.listeners.nats;
  const connection: NatsConnection | undefined =
    natsConfig === undefined ? undefined : await connectNats(natsConfig);
  if (connection !== undefined) {
    transports.push(
      createNatsTransport({ connection, contracts, maxPayloadBytes: config.defaults.maxPayloadBytes }),
    );
  }
  const closeNats = async (): Promise<void> => {
    if (connection !== undefined && !connection.isClosed()) await connection.drain().catch(() => undefined);
  };
  const clients: ProcessClient[] = [];
  const processes = new Map<string, ProcessClient>();
  try {
    connectProcesses();
  } catch (error) {
    await closeNats();
    throw error;
  }
  function connectProcesses(): void {
    for (const process of config.processes) {
      const location = new URL(process.location);
      const scheme = location.protocol.replace(/:$/, "");
      const transport = transports.find((t) => t.schemes.includes(scheme));
      if (transport === undefined) {
        throw new BridgeError(
          Code.INVALID_ARGUMENT,
          Reason.INVALID_CONFIG,
          scheme === "nats"
            ? `process ${process.name}: nats:// locations need a NATS connection (listeners.nats or --nats)`
            : `process ${process.name}: no transport for ${scheme}:// locations`,
        );
      }
      const client = transport.connect({ name: process.name, location, envelope: process.envelope });
      clients.push(client);
      for (const service of process.services) processes.set(service, client);
    }
  }

  let store: Awaited<ReturnType<typeof createStore>>;
  let cluster: ClusterParts | undefined;
  try {
    // Several replicas (DESIGN §7): the store and the engine learn the partitioning first.
    const clusterConfig = config.cluster;
    if (clusterConfig !== undefined) {
      // Loaded on demand: a single bridge never holds the cluster's leases and KV client code.
      const { prepareCluster } = await import("./cluster-runtime.js");
      cluster = await prepareCluster({
        config: { ...config, cluster: clusterConfig },
        contracts,
        connection,
        logger,
      });
    }
    store = await createStore(config.store, {
      logger,
      contracts,
      ...(connection === undefined ? {} : { natsConnection: connection }),
      ...(cluster === undefined ? {} : { partitions: cluster.storePartitions }),
    });
  } catch (error) {
    await cluster?.stop();
    await closeNats();
    throw error;
  }
  const engine = createBridge({
    contracts,
    store,
    processes,
    defaults: config.defaults,
    logger,
    ...(options.clock === undefined ? {} : { clock: options.clock }),
    ...(cluster === undefined ? {} : { placement: cluster.placement }),
  });
  let bridge: Bridge = engine;
  try {
    // Recovery (S10) runs before the listener opens: resumed one-way messages queue
    // ahead of any new call. A replica restores nothing here: it loads each partition
    // it takes over (cluster-runtime.ts).
    await engine.start();
    if (cluster !== undefined) bridge = await cluster.start(engine, store);
  } catch (error) {
    await cluster?.stop();
    await engine.close();
    await closeNats();
    throw error;
  }
  // Every inbound adapter gets the same context: the engine, the contracts, principal
  // resolution and the limits (S13); the engine never learns which one a call used.
  const context: ListenerContext = {
    bridge,
    contracts,
    principals: anonymousPrincipals(),
    maxPayloadBytes: config.defaults.maxPayloadBytes,
    logger,
  };
  const listeners: Listener[] = [];
  let grpc: GrpcListener;
  let http: HttpListener | undefined;
  let nats: NatsListener | undefined;
  try {
    const descriptors = reflectionDescriptors(contracts);
    grpc = await startGrpcListener(context, { address: config.listeners.grpc, descriptors });
    listeners.push(grpc);
    if (config.listeners.http !== undefined) {
      http = await startHttpListener(context, {
        address: config.listeners.http,
        descriptors,
        cookies: config.listeners.httpCookies,
        tls: config.listeners.httpTls,
      });
      listeners.push(http);
    }
    if (connection !== undefined && natsConfig !== undefined) {
      nats = await startNatsListener(context, { connection, config: natsConfig });
      listeners.push(nats);
    }
  } catch (error) {
    await Promise.allSettled(listeners.map((l) => l.close()));
    await cluster?.stop();
    await bridge.close();
    await closeNats();
    throw error;
  }

  let stopping: Promise<void> | undefined;
  const stop = (graceMs = 10_000): Promise<void> => {
    stopping ??= (async () => {
      await Promise.all(listeners.map((listener) => listener.drain(graceMs)));
      await bridge.drain(graceMs);
      // Leases go back once nothing runs here, so the others take over without waiting for the TTL.
      await cluster?.stop();
      await bridge.close();
      await Promise.allSettled(clients.map((c) => c.close()));
      await closeNats();
    })();
    return stopping;
  };
  return { bridge, grpc, http, nats, listeners, stop, [Symbol.asyncDispose]: () => stop() };
}
