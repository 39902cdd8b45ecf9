import type { SessionRecord } from "../bridge/store/records.js";

/**
 * The session record the store benches drive (store-apply-cpu.ts,
 * store-write-amplification.ts): a live session of the bench's echo service, correlated
 * by one key, started at `atMs` with an empty journal, as the engine records it when a
 * starter opens it (S2).
 */
export function benchSession(id: string, correlationKey: string, atMs: number): SessionRecord {
  return {
    id,
    service: "bench.v1.Echo",
    state: "active",
    endReason: undefined,
    correlationSet: "byKey",
    correlation: { key: correlationKey },
    correlationKey,
    principal: "anonymous",
    createdAtMs: atMs,
    lastActiveAtMs: atMs,
    endedAtMs: undefined,
    idleTimeoutMs: 1_800_000,
    maxLifetimeMs: 86_400_000,
    nextSeq: 1,
    journalLength: 0,
  };
}
