import { BridgeError } from "../errors/bridge-error.js";
import { codeFromNumber } from "../errors/code.js";
import type { StoreBatch } from "./session-store.js";
import type { MigrationProgress } from "./sqlite-schema.js";
import { asStoreError } from "./store-errors.js";

/**
 * Messages between the store (main thread) and its writer thread. Commits are answered
 * strictly in order, so they carry no ids: one `applied` reply per transaction lists one
 * result per commit it contained. Purges run in steps between commits and are answered,
 * in the order they were sent, by one `purged` reply each when they finish.
 */

export interface WriterOptions {
  readonly path: string;
  readonly synchronous: "full" | "normal";
  readonly busyTimeoutMs: number;
  /** What a purge step may hold the writer, in milliseconds (sqlite-purge-pace.ts). */
  readonly purgeStepBudgetMs: number;
}

export interface PurgeCounts {
  readonly sessions: number;
  readonly idempotency: number;
}

/** How one purge went: what the store logs when it ends, and adds to its stats. */
export interface PurgeRun {
  /** Steps that deleted something. */
  readonly steps: number;
  /** Rows they deleted (journal, outbox, session, key and idempotency rows). */
  readonly rows: number;
  /** The time the steps held the writer, together, in milliseconds. */
  readonly stepMs: number;
  readonly longestStepMs: number;
  /** Commits that waited for a step of this purge, and the longest such wait (S9: their calls waited as long). */
  readonly delayedCommits: number;
  readonly longestDelayMs: number;
}

export type WriterRequest =
  /**
   * `sentAtMs` is when the store posted it (performance.timeOrigin + now(), comparable
   * between threads): a commit that arrived while a purge step ran waited for its rest.
   */
  | { readonly type: "commit"; readonly batch: StoreBatch; readonly sentAtMs: number }
  | { readonly type: "purge"; readonly endedBeforeMs: number; readonly idempotencyBeforeMs: number }
  /** Sent after every other request; the writer closes its connection and answers `closed`. */
  | { readonly type: "close" };

/** A BridgeError flattened for the trip between threads. */
export interface WireError {
  readonly code: number;
  readonly reason: string;
  readonly message: string;
  readonly metadata?: Readonly<Record<string, string>>;
  /** What SQLite said, when it said something. */
  readonly cause?: { readonly message: string; readonly code?: string };
}

export type WriterResult = { readonly ok: true } | { readonly ok: false; readonly error: WireError };

export type PurgeResult =
  | { readonly ok: true; readonly purged: PurgeCounts; readonly run: PurgeRun }
  | { readonly ok: false; readonly error: WireError };

export type WriterReply =
  | { readonly type: "ready" }
  | { readonly type: "failed"; readonly error: WireError }
  /**
   * `purgeDelaysMs`, one per result, when a purge step held any of them back: how long
   * each commit waited for purge steps (one running when it arrived, or one in its own
   * transaction).
   */
  | {
      readonly type: "applied";
      readonly results: readonly WriterResult[];
      readonly purgeDelaysMs?: readonly number[];
    }
  | { readonly type: "purged"; readonly result: PurgeResult }
  /**
   * Rows a purge step changed, so the store can account for the WAL it wrote, and how long
   * the step held the writer (commits that arrived meanwhile waited that long for it).
   */
  | { readonly type: "wrote"; readonly rows: number; readonly ms: number }
  | { readonly type: "closed" }
  /** How a schema upgrade is getting on, before `ready`. */
  | { readonly type: "migrating"; readonly progress: MigrationProgress };

/** Flattens anything thrown in the writer; what is not a BridgeError becomes STORE_FAILURE. */
export function toWireError(error: unknown, doing: string): WireError {
  const e = asStoreError(error, doing);
  const cause = e.cause;
  const metadata = Object.keys(e.metadata).length === 0 ? {} : { metadata: { ...e.metadata } };
  if (!(cause instanceof Error)) return { code: e.code, reason: e.reason, message: e.message, ...metadata };
  const sqliteCode = (cause as { code?: unknown }).code;
  return {
    code: e.code,
    reason: e.reason,
    message: e.message,
    ...metadata,
    cause:
      typeof sqliteCode === "string"
        ? { message: cause.message, code: sqliteCode }
        : { message: cause.message },
  };
}

/** The BridgeError a WireError stands for, with SQLite's own error as its cause. */
export function fromWireError(wire: WireError): BridgeError {
  const metadata = wire.metadata === undefined ? {} : { metadata: wire.metadata };
  if (wire.cause === undefined) {
    return new BridgeError(codeFromNumber(wire.code), wire.reason, wire.message, metadata);
  }
  const cause = Object.assign(
    new Error(wire.cause.message),
    wire.cause.code === undefined ? {} : { code: wire.cause.code },
  );
  return new BridgeError(codeFromNumber(wire.code), wire.reason, wire.message, { ...metadata, cause });
}
