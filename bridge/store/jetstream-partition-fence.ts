import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { BatchApply } from "./jetstream-apply.js";
import type { CorrelationClaims } from "./jetstream-claims.js";
import { batchFromJson, batchToJson, decodeJson, encodeJson } from "./jetstream-codec.js";
import { isCasFailure, natsStoreError, partitionMoving } from "./jetstream-errors.js";
import type { JetStreamJournals } from "./jetstream-journal.js";
import type { StorePartitions } from "./jetstream-store.js";
import type { JournalWakeups } from "./journal-wakeups.js";
import type { StoreBatch } from "./session-store.js";
import { asStoreError, storeFailure } from "./store-errors.js";

/**
 * The partitioned write path of the JetStream store's write-ahead (jetstream-write-ahead.ts):
 * the partition fences that make one replica a partition's only writer.
 *
 * Partitions and fencing (option `partitions`, several replicas, DESIGN §7). Each
 * partition has its own write-ahead subject `<prefix>.pwal.<partition>` in the stream
 * `<prefix>_pwal`, which keeps one message per subject. The batch of a session is
 * published there with Nats-Expected-Last-Subject-Sequence set to the sequence this
 * store last wrote (or fenced) on that subject, so the publish — the commit point — fails
 * as soon as another store has claimed the partition: a replica that lost its lease
 * cannot commit one more batch, and nothing it did not commit is acknowledged. The one
 * kept message is the partition's last batch; a claim applies it again (every step is
 * safe to repeat) before fencing, which is how a new owner completes what a killed one
 * committed and did not apply. Batches naming no session use `<prefix>.wal`.
 */
export interface PartitionFence {
  /** The one partition a batch writes, when the store is partitioned and it names a session. */
  partitionOf(batch: StoreBatch): number | undefined;
  /** The claim of this store a batch is made under, read when the batch is made. */
  claimMadeUnder(batch: StoreBatch): number | undefined;
  /** Checks, commit point and apply of a batch of `partition`, fenced. */
  commit(batch: StoreBatch, partition: number, madeUnder: number | undefined): Promise<void>;
  claim(partition: number): Promise<void>;
  release(partition: number): void;
  /** Whether this store still is the partition's last writer; run after the commits queued. */
  confirm(partition: number): Promise<boolean>;
}

export interface PartitionFenceParts {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  /** The partitions' write-ahead stream (`<prefix>_pwal`, one message per subject). */
  readonly partitionStream: string;
  readonly prefix: string;
  readonly partitions: StorePartitions | undefined;
  readonly journals: JetStreamJournals;
  readonly claims: CorrelationClaims;
  readonly batchApply: BatchApply;
  /** Woken for the sessions of every applied batch (S9 followers). */
  readonly wakeups: JournalWakeups;
  readonly isClosed: () => boolean;
}

/** Attempts to apply a partition's batch: about 10 s of backoff, longer than a NATS leader election. */
const PARTITION_APPLY_ATTEMPTS = 14;
/** Fence publishes a claim tries while the previous writer still commits. */
const CLAIM_ATTEMPTS = 5;
/** The field that tells a fence message from a batch on a partition's write-ahead subject. */
const FENCE_FIELD = "fence";

export function createPartitionFence(parts: PartitionFenceParts): PartitionFence {
  const { js, jsm, partitionStream, prefix, journals, partitions, wakeups, isClosed } = parts;
  const { planClaims, takeClaims, releaseClaims, releaseFreed } = parts.claims;
  const { checkEntries, apply } = parts.batchApply;
  /** Claimed partitions → the last sequence this store wrote on their write-ahead subject. */
  const heads = new Map<number, number>();
  /** Claimed partitions → which claim of this store holds them (a count of claims). */
  const claimOf = new Map<number, number>();
  let claims = 0;

  /** The store stops writing a partition until it is claimed again (see StorePartitions.onLost). */
  const losePartition = (partition: number, cause: unknown): void => {
    if (!heads.delete(partition)) return;
    partitions?.onLost?.(partition, cause instanceof Error ? cause : new Error(String(cause)));
  };

  /**
   * Applies a batch of a partition. A node of the NATS cluster may be electing leaders
   * for a few seconds, so this retries longer than the shared path; if it still fails the
   * partition is given up (the batch is kept as the partition's last write-ahead message
   * and the next claim applies it), never the whole store.
   */
  const applyPartitionBatch = async (batch: StoreBatch, partition: number, seq: number): Promise<void> => {
    let lastError: unknown;
    for (let attempt = 0; attempt < PARTITION_APPLY_ATTEMPTS; attempt++) {
      try {
        // A retry comes seconds later: if another store has claimed the partition since,
        // it applied this batch before fencing and may have committed newer records over
        // it, which this batch's KV puts would overwrite with older ones (the next owner
        // would then load a session from before its last commit). The batch is still the
        // subject's last message only while no one claimed it.
        if (attempt > 0) await checkStillLast(partition, seq);
        await apply(batch);
        if (batch.entries !== undefined && batch.entries.length > 0) {
          wakeups.notify(new Set(batch.entries.map((e) => e.sessionId)));
        }
        return;
      } catch (error) {
        if (error instanceof BridgeError && error.reason === Reason.PARTITION_MOVING) throw error;
        lastError = error;
        for (const entry of batch.entries ?? []) journals.forget(entry.sessionId);
        await sleep(Math.min(1000, 50 * 2 ** attempt));
      }
    }
    throw lastError;
  };

  /** Throws PARTITION_MOVING once the partition's write-ahead subject moved past `seq`. */
  const checkStillLast = async (partition: number, seq: number): Promise<void> => {
    const last = await jsm.streams.getMessage(partitionStream, {
      last_by_subj: `${prefix}.pwal.${partition}`,
    });
    const at = last?.seq ?? 0;
    if (at > seq) throw partitionMoving(partition, "another replica claimed it and applied its last batch");
    // Behind this store's own write: a stream leader elected a moment ago answering from
    // before it caught up. Nothing is known; this attempt waits for the next.
    if (at < seq)
      throw new Error(`partition ${partition}'s write-ahead subject read behind its last write; retry`);
  };

  const partitionOf = (batch: StoreBatch): number | undefined => {
    if (partitions === undefined) return undefined;
    const ids = new Set<string>();
    for (const r of batch.sessions ?? []) ids.add(r.id);
    for (const e of batch.entries ?? []) ids.add(e.sessionId);
    for (const o of batch.outboxAdd ?? []) ids.add(o.sessionId);
    for (const o of batch.outboxRemove ?? []) ids.add(o.sessionId);
    const found = new Set([...ids].map((id) => partitions.of(id)));
    if (found.size > 1) throw storeFailure("a batch may write sessions of one partition only");
    return found.values().next().value;
  };

  /** Steps (2) and (3) on the partition's write-ahead subject, fenced (see the header). */
  const commitInPartition = async (
    batch: StoreBatch,
    partition: number,
    taken: Map<string, number>,
  ): Promise<void> => {
    const expected = heads.get(partition);
    if (expected === undefined) {
      await releaseClaims(taken);
      throw partitionMoving(partition, "this replica no longer writes it");
    }
    let seq: number;
    try {
      const ack = await js.publish(`${prefix}.pwal.${partition}`, encodeJson(batchToJson(batch)), {
        msgID: randomUUID(),
        expect: { lastSubjectSequence: expected },
      });
      seq = ack.seq;
      heads.set(partition, seq);
    } catch (error) {
      // Fenced out: nothing was written, the claims go back. Any other failure leaves the
      // outcome unknown: the claims stay (they turn stale if the batch was not stored) and
      // the partition is claimed again, which applies the batch if it was stored.
      if (isCasFailure(error)) await releaseClaims(taken);
      losePartition(partition, error);
      throw partitionMoving(partition, isCasFailure(error) ? "another replica took it over" : "NATS failed");
    }
    try {
      await applyPartitionBatch(batch, partition, seq);
    } catch (error) {
      losePartition(partition, error);
      // Claimed meanwhile: the claimant applied the batch, so it is committed and visible.
      if (error instanceof BridgeError && error.reason === Reason.PARTITION_MOVING) return;
      throw partitionMoving(partition, "its last batch is not applied yet");
    }
  };

  /**
   * The claim a batch is made under: the engine makes it from its sessions of that claim.
   * A batch made while the partition was not held, or under an earlier claim, comes from
   * sessions as they were before the partition was loaded again (a call of a released
   * session finishing, a commit queued behind the one that failed): written after the new
   * claim it would put that older state over what the new load read, and the engine's new
   * view of the session would be behind its journal (S7 refusals from a stale view).
   */
  const claimMadeUnder = (batch: StoreBatch): number | undefined => {
    try {
      const partition = partitionOf(batch);
      return partition === undefined || !heads.has(partition) ? undefined : claimOf.get(partition);
    } catch {
      return undefined; // the commit refuses the batch itself
    }
  };

  const commit = async (
    batch: StoreBatch,
    partition: number,
    madeUnder: number | undefined,
  ): Promise<void> => {
    if (!heads.has(partition)) throw partitionMoving(partition, "this replica does not write it");
    if (madeUnder !== claimOf.get(partition))
      throw partitionMoving(partition, "the batch was made before this replica last loaded it");
    try {
      await checkEntries(batch.entries ?? []);
      const records = batch.sessions ?? [];
      const { claims, states } = await planClaims(records);
      const taken = await takeClaims(claims, states, records);
      await commitInPartition(batch, partition, taken);
      await releaseFreed(claims, states, taken);
    } catch (error) {
      // Only S5 is a verdict on the batch itself. Anything else — NATS failing, or a
      // journal that does not continue where the engine thinks (its view is stale) — makes
      // the owner load the partition again from the store before it writes there again.
      if (error instanceof BridgeError && error.code === Code.ALREADY_EXISTS) throw error;
      losePartition(partition, error);
      // A stale view is no verdict on the call either: retried once the partition is
      // loaded again, it is answered from the stored session (S7, S8), so the caller gets
      // the retryable UNAVAILABLE, not ABORTED.
      if (error instanceof BridgeError && error.reason === Reason.JOURNAL_CONFLICT)
        throw partitionMoving(partition, `${error.message}; it is being loaded again`);
      throw natsStoreError(error, "cannot commit the batch");
    }
  };

  const claim = async (partition: number): Promise<void> => {
    if (partitions === undefined) throw storeFailure("the store was opened without partitions");
    const subject = `${prefix}.pwal.${partition}`;
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
      const last = await jsm.streams.getMessage(partitionStream, { last_by_subj: subject });
      if (last !== null) {
        const body = decodeJson(last.data);
        // The previous writer's last batch: it may have stopped before applying it.
        if (!(FENCE_FIELD in body)) await applyPartitionBatch(batchFromJson(body), partition, last.seq);
      }
      try {
        const ack = await js.publish(subject, encodeJson({ [FENCE_FIELD]: Date.now() }), {
          msgID: randomUUID(),
          expect: { lastSubjectSequence: last?.seq ?? 0 },
        });
        heads.set(partition, ack.seq);
        claimOf.set(partition, ++claims);
        return;
      } catch (error) {
        // The old writer committed once more between the read and the fence: apply that too.
        if (!isCasFailure(error)) throw asStoreError(error, `cannot claim partition ${partition}`);
      }
    }
    throw partitionMoving(partition, "its previous writer keeps committing");
  };

  const confirm = async (partition: number): Promise<boolean> => {
    const head = heads.get(partition);
    if (isClosed() || head === undefined) return false;
    let last: number;
    try {
      const message = await jsm.streams.getMessage(partitionStream, {
        last_by_subj: `${prefix}.pwal.${partition}`,
      });
      last = message?.seq ?? 0;
    } catch {
      return false;
    }
    if (last === head) return heads.get(partition) === head;
    // Behind this store's own write: a leader that has not caught up answered. Not
    // confirmed, and no sign that anyone else wrote.
    if (last < head) return false;
    losePartition(
      partition,
      new Error(
        `partition ${partition} was written by another store (write-ahead sequence ${last}, not ${head})`,
      ),
    );
    return false;
  };

  return {
    partitionOf,
    claimMadeUnder,
    commit,
    claim,
    release(partition) {
      heads.delete(partition);
    },
    confirm,
  };
}
