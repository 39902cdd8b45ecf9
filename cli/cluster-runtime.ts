import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createNatsForwarder, serveForwardedCalls } from "../adapters/nats/cluster-forwarding.js";
import { type ClusterBridge, createClusterBridge } from "../bridge/cluster/cluster-bridge.js";
import { createClusterPlacement } from "../bridge/cluster/cluster-placement.js";
import { PartitionLeases } from "../bridge/cluster/partition-leases.js";
import { createPartitioning, type Partitioning } from "../bridge/cluster/partitions.js";
import type { BridgeConfig, ClusterConfig } from "../bridge/config/config.js";
import type { ContractSet } from "../bridge/contracts/contract.js";
import type { Bridge } from "../bridge/engine/bridge-engine.js";
import type { SessionPlacement } from "../bridge/engine/partition-sessions.js";
import type { Logger } from "../bridge/logger.js";
import type { JetStreamSessionStore, StorePartitions } from "../bridge/store/jetstream-store.js";
import type { SessionStore } from "../bridge/store/session-store.js";

/**
 * One replica of several (DESIGN §7): the parts the runtime adds around the engine when
 * the configuration has a cluster block. Made in two steps because the store and the
 * engine need the partitioning before they exist, and the leases need both.
 */
export interface ClusterParts {
  readonly partitioning: Partitioning;
  /** For createStore: which partition a session is in, and how a fenced partition is reported. */
  readonly storePartitions: StorePartitions;
  /** For createBridge: where new sessions are born. */
  readonly placement: SessionPlacement;
  /** Starts leases and forwarding; the returned bridge is what the listeners get. */
  start(engine: Bridge, store: SessionStore): Promise<ClusterBridge>;
  /** Stops forwarding, hands the leases back (the others take over at once). */
  stop(): Promise<void>;
}

export async function prepareCluster(options: {
  readonly config: BridgeConfig & { readonly cluster: ClusterConfig };
  readonly contracts: ContractSet;
  readonly connection: NatsConnection | undefined;
  readonly logger: Logger;
}): Promise<ClusterParts> {
  const { config, contracts, logger } = options;
  const { cluster } = config;
  const store = config.store;
  if (store.kind !== "jetstream") throw new Error("a cluster needs the jetstream store");
  const partitioning = createPartitioning(cluster.partitions);
  // Leases and forwarding ride on the bridge's NATS connection, or one to the store's servers.
  const own =
    options.connection === undefined
      ? await connect({ servers: (store.url ?? "").split(",").map((u) => u.trim()), name: cluster.replica })
      : undefined;
  const connection = options.connection ?? (own as NatsConnection);
  let leases: PartitionLeases | undefined;
  let forwarding: { stop(): Promise<void> } | undefined;
  const storePartitions: StorePartitions = {
    count: partitioning.count,
    of: (sessionId) => partitioning.ofSession(sessionId),
    onLost: (partition, cause) => {
      logger.warn({ partition, err: cause }, "store stopped writing a partition; loading it again");
      leases?.reload(partition);
    },
  };
  const placement = createClusterPlacement(partitioning, () => leases?.served() ?? []);

  return {
    partitioning,
    storePartitions,
    placement,
    async start(engine, sessionStore) {
      const jetstreamStore = sessionStore as JetStreamSessionStore;
      const forwardingOptions = {
        connection,
        prefix: store.prefix,
        replica: cluster.replica,
        contracts,
        maxPayloadBytes: config.defaults.maxPayloadBytes,
        logger,
      };
      const bridge = createClusterBridge({
        engine,
        partitioning,
        ownership: {
          serves: (p) => leases?.serves(p) ?? false,
          ownerOf: (p) => leases?.ownerOf(p),
          confirm: (p) => jetstreamStore.confirmPartition(p),
        },
        replica: cluster.replica,
        forwarder: createNatsForwarder(forwardingOptions),
        maxCorrelationValueBytes: config.defaults.maxCorrelationValueBytes,
      });
      const inPartitions = (set: ReadonlySet<number>) => (sessionId: string) =>
        set.has(partitioning.ofSession(sessionId));
      leases = new PartitionLeases({
        connection,
        prefix: store.prefix,
        replica: cluster.replica,
        partitions: partitioning.count,
        leaseTtlMs: cluster.leaseTtlMs,
        replicas: store.replicas,
        logger,
        async onAcquired(partitions) {
          // Fence first (the previous owner can commit nothing more), then load what it left.
          for (const p of partitions) await jetstreamStore.claimPartition(p);
          await engine.adopt(inPartitions(new Set(partitions)));
        },
        onLost(partition) {
          jetstreamStore.releasePartition(partition);
          engine.release(inPartitions(new Set([partition])));
        },
        beforeRelease: (partition) =>
          Promise.race([
            bridge.settled(partition),
            new Promise<void>((resolve) => setTimeout(resolve, cluster.leaseTtlMs).unref()),
          ]),
      });
      forwarding = serveForwardedCalls(bridge, forwardingOptions);
      await leases.start();
      return bridge;
    },
    async stop() {
      await forwarding?.stop();
      await leases?.stop();
      if (own !== undefined) await own.drain().catch(() => undefined);
    },
  };
}
