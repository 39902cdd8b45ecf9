import type { NatsConnection } from "@nats-io/transport-node";
import type { StoreConfig } from "../config/config.js";
import type { ContractSet } from "../contracts/contract.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { Logger } from "../logger.js";
import type { StorePartitions } from "./jetstream-store.js";
import { createMemoryStore } from "./memory-store.js";
import type { SessionStore } from "./session-store.js";
import { createSqliteStore } from "./sqlite-store.js";

export interface CreateStoreOptions {
  /**
   * The bridge's NATS connection (listeners.nats), used by the JetStream store when
   * storeOptions.url names no servers of its own; the store leaves it open.
   */
  readonly natsConnection?: NatsConnection;
  /** Several replicas (DESIGN §7): the jetstream store writes only the partitions it claims. */
  readonly partitions?: StorePartitions;
  /** The SQLite store logs each purge and the progress of schema upgrades. */
  readonly logger?: Logger;
  /** The memory store admits requests for their end operations in its reserve (S12). */
  readonly contracts?: ContractSet;
}

/**
 * The store a resolved configuration asks for. "memory" is for tests and benchmarks: it
 * keeps nothing across a restart (no S10) and holds everything in the process: the same
 * retention and purge as SQLite, and at most storeOptions.maxMemoryBytes (memory-store.ts). "sqlite" is the durable default;
 * "jetstream" is shared by several bridge replicas and replicated by NATS.
 */
export async function createStore(
  config: StoreConfig,
  options: CreateStoreOptions = {},
): Promise<SessionStore> {
  switch (config.kind) {
    case "memory":
      return createMemoryStore({
        maxMemoryBytes: config.maxMemoryBytes,
        ...(options.contracts === undefined
          ? {}
          : { endOperations: endRequestOperations(options.contracts) }),
      });
    case "sqlite":
      return createSqliteStore({
        path: config.path,
        synchronous: config.synchronous,
        ...(options.logger === undefined ? {} : { logger: options.logger }),
      });
    case "jetstream": {
      const where =
        config.url !== undefined
          ? { servers: config.url.split(",").map((u) => u.trim()) }
          : options.natsConnection !== undefined
            ? { connection: options.natsConnection }
            : undefined;
      if (where === undefined) {
        throw new BridgeError(
          Code.FAILED_PRECONDITION,
          Reason.INVALID_CONFIG,
          "the jetstream store needs NATS: set storeOptions.url, listeners.nats or --nats",
        );
      }
      // Loaded on demand: a bridge on another store never holds the JetStream client's code.
      const { createJetStreamStore } = await import("./jetstream-store.js");
      return createJetStreamStore({
        ...where,
        prefix: config.prefix,
        replicas: config.replicas,
        ...(options.partitions === undefined ? {} : { partitions: options.partitions }),
      });
    }
  }
}

/**
 * Paths of the operations whose one request ends its session (S12). A client stream that
 * ends its session is left out: its messages keep coming until it ends, so they are new
 * work like any other.
 */
export function endRequestOperations(contracts: ContractSet): ReadonlySet<string> {
  const paths = new Set<string>();
  for (const op of contracts.operations.values()) if (op.endsSession && !op.requestStream) paths.add(op.path);
  return paths;
}
