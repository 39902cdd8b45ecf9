import type { StoreKind } from "./bench-processes.js";

/** The soak's shape, from the environment. */
export interface SoakSettings {
  /** Measured run per store, after opening the sessions (SOAK_SECONDS, default 600). */
  readonly seconds: number;
  /** RSS growth is measured from the end of this warm-up (SOAK_WARMUP_SECONDS, default 60 or a fifth of the run). */
  readonly warmupSeconds: number;
  /** Live sessions kept open throughout (SOAK_SESSIONS). */
  readonly sessions: number;
  /** Calls per second, all kinds together (SOAK_RATE). */
  readonly ratePerSec: number;
  readonly connections: number;
  readonly payloadBytes: number;
  /** Stores run one after the other (SOAK_STORES, comma-separated). */
  readonly stores: readonly StoreKind[];
  /** Retention and purge interval, from bench/soak.yaml. */
  readonly retentionMs: number;
  readonly purgeIntervalMs: number;
}

function positive(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === "") return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${name} must be a positive number, got ${raw}`);
  return value;
}

export function soakSettings(): SoakSettings {
  const seconds = positive("SOAK_SECONDS", 600);
  const stores = (process.env.SOAK_STORES ?? "sqlite,memory").split(",").map((s) => s.trim());
  for (const store of stores) {
    if (store !== "sqlite" && store !== "memory") throw new Error(`SOAK_STORES: unknown store ${store}`);
  }
  // bench/soak.yaml: sessionRetentionMs and idempotencyRetentionMs; the engine purges every
  // half retention period.
  const retentionMs = 60_000;
  return {
    seconds,
    warmupSeconds: positive("SOAK_WARMUP_SECONDS", Math.min(60, seconds / 5)),
    sessions: positive("SOAK_SESSIONS", 10_000),
    ratePerSec: positive("SOAK_RATE", 300),
    connections: 8,
    payloadBytes: positive("SOAK_PAYLOAD_BYTES", 1024),
    stores: stores as StoreKind[],
    retentionMs,
    purgeIntervalMs: retentionMs / 2,
  };
}
