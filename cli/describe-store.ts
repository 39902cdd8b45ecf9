import type { StoreConfig } from "../bridge/config/config.js";

/** The store as `validate` and the "sessionbridge ready" line name it. */
export function describeStore(store: StoreConfig): string {
  if (store.kind === "sqlite") return `sqlite:${store.path}`;
  if (store.kind === "jetstream") return `jetstream:${store.prefix} (R${store.replicas})`;
  return store.kind;
}
