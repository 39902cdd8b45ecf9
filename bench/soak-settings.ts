import type { StoreKind } from "./bench-processes.js";
import { CALLS_PER_SESSION, idleSessions, sessionLifeSeconds } from "./soak-plan.js";

/** The soak's shape, from the environment. */
export interface SoakSettings {
  /** Measured run per store, after opening the sessions (SOAK_SECONDS, default 600). */
  readonly seconds: number;
  /**
   * RSS growth is measured from the end of this warm-up (SOAK_WARMUP_SECONDS, default
   * steadyStateSeconds).
   */
  readonly warmupSeconds: number;
  /** Live sessions throughout, idle and active together (SOAK_SESSIONS). */
  readonly sessions: number;
  /** Active slots that turn their sessions over (SOAK_ACTIVE_SESSIONS). */
  readonly activeSessions: number;
  /** Sessions opened in the set-up and never called: sessions less the active ones live at a time. */
  readonly idleSessions: number;
  /** Calls and one-way messages in an active session's life, between its Open and its End. */
  readonly callsPerSession: number;
  /** Seconds from an active session's Open to its End. */
  readonly sessionLifeSeconds: number;
  /**
   * When what the store holds stops growing: an active session's life, then the retention
   * and one purge interval before its records are gone.
   */
  readonly steadyStateSeconds: number;
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

function whole(name: string, fallback: number): number {
  const value = positive(name, fallback);
  if (!Number.isInteger(value)) throw new Error(`${name} must be a whole number, got ${value}`);
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
  const purgeIntervalMs = retentionMs / 2;
  const sessions = whole("SOAK_SESSIONS", 10_000);
  const activeSessions = whole("SOAK_ACTIVE_SESSIONS", 1_000);
  if (activeSessions > sessions) {
    throw new Error(`SOAK_ACTIVE_SESSIONS (${activeSessions}) must not exceed SOAK_SESSIONS (${sessions})`);
  }
  const ratePerSec = positive("SOAK_RATE", 300);
  const life = sessionLifeSeconds(activeSessions, ratePerSec);
  const steadyStateSeconds = Math.ceil(life + (retentionMs + purgeIntervalMs) / 1000);
  return {
    seconds,
    warmupSeconds: positive("SOAK_WARMUP_SECONDS", steadyStateSeconds),
    sessions,
    activeSessions,
    idleSessions: idleSessions(sessions, activeSessions),
    callsPerSession: CALLS_PER_SESSION,
    sessionLifeSeconds: life,
    steadyStateSeconds,
    ratePerSec,
    connections: 8,
    payloadBytes: positive("SOAK_PAYLOAD_BYTES", 1024),
    stores: stores as StoreKind[],
    retentionMs,
    purgeIntervalMs,
  };
}
