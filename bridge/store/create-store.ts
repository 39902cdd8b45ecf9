import type { StoreConfig } from "../config/config.js";
import { createMemoryStore } from "./memory-store.js";
import type { SessionStore } from "./session-store.js";
import { createSqliteStore } from "./sqlite-store.js";

/** The store a resolved configuration asks for. */
export async function createStore(config: StoreConfig): Promise<SessionStore> {
  switch (config.kind) {
    case "memory":
      return createMemoryStore();
    case "sqlite":
      return createSqliteStore({ path: config.path, synchronous: config.synchronous });
  }
}
