import type { StoreConfig } from "../config/config.js";
import { createMemoryStore } from "./memory-store.js";
import type { SessionStore } from "./session-store.js";
import { createSqliteStore } from "./sqlite-store.js";

/**
 * The store a resolved configuration asks for. "memory" is for tests and benchmarks: it
 * keeps nothing across a restart (no S10) and holds everything in the process, bounded
 * only by the same retention and purge as SQLite. "sqlite" is the durable default.
 */
export async function createStore(config: StoreConfig): Promise<SessionStore> {
  switch (config.kind) {
    case "memory":
      return createMemoryStore();
    case "sqlite":
      return createSqliteStore({ path: config.path, synchronous: config.synchronous });
  }
}
