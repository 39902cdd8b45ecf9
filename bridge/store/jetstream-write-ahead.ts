import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import type { JetStreamClient, JetStreamManager } from "@nats-io/jetstream";
import type { KV } from "@nats-io/kv";
import { createBatchApply } from "./jetstream-apply.js";
import type { CorrelationClaims } from "./jetstream-claims.js";
import { batchFromJson, batchToJson, decodeJson, encodeJson } from "./jetstream-codec.js";
import { isAlreadyDeleted, natsStoreError } from "./jetstream-errors.js";
import type { JetStreamJournals } from "./jetstream-journal.js";
import { createPartitionFence } from "./jetstream-partition-fence.js";
import type { StorePartitions } from "./jetstream-store.js";
import type { JournalWakeups } from "./journal-wakeups.js";
import { copyBatch } from "./record-copy.js";
import type { StoreBatch } from "./session-store.js";
import { asStoreError, storeClosed, storeFailure } from "./store-errors.js";

/**
 * The write path of the JetStream store (jetstream-store.ts): commits and the write-ahead
 * messages that make them atomic. Batches of a partition, when several replicas share the
 * store, take the fenced path of jetstream-partition-fence.ts.
 *
 * Atomicity of a StoreBatch. JetStream has no transaction across subjects or buckets, so
 * a batch is made atomic by a single write-ahead message: (1) every check runs first —
 * journal indexes free, S5 claims taken — and a failure there rejects the batch with
 * nothing written but the claims, which are released again; (2) the whole batch is
 * published as ONE message to `<prefix>.wal`; that publish is the commit point, and
 * JetStream stores it all or not at all (replicated on R3 before the ack); (3) the parts are
 * then applied, each idempotently: journal appends skip indexes already present, KV puts
 * and deletes can be repeated; (4) the write-ahead message is deleted. A bridge that stops
 * between (2) and (4) leaves the message in the stream, and the next open applies every
 * message still there, in order, before serving anything, so a committed batch is never
 * half visible after a restart. commit() resolves after (3), so what it acknowledges is
 * readable. If applying keeps failing the store refuses further work until it is opened
 * again (which replays), rather than answer from half a batch.
 */
export interface WriteAhead {
  /** StoreBatch commit: checks, commit point, apply; commits resolve in the order made. */
  commit(batch: StoreBatch): Promise<void>;
  claimPartition(partition: number): Promise<void>;
  releasePartition(partition: number): void;
  confirmPartition(partition: number): Promise<boolean>;
  /** At open: applies batches committed by a store that stopped before applying them. */
  replay(): Promise<void>;
  /** Set once a committed batch could not be applied: the store then refuses work until reopened. */
  broken(): Error | undefined;
  /** Resolves once every commit made so far has finished. */
  settled(): Promise<void>;
}

export interface WriteAheadParts {
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  /** The shared write-ahead stream (`<prefix>_wal`, subject `<prefix>.wal`). */
  readonly walStream: string;
  /** The partitions' write-ahead stream (`<prefix>_pwal`, one message per subject). */
  readonly partitionStream: string;
  readonly prefix: string;
  readonly partitions: StorePartitions | undefined;
  readonly buckets: { sessions: KV; idempotency: KV; outbox: KV };
  readonly journals: JetStreamJournals;
  readonly claims: CorrelationClaims;
  /** Woken for the sessions of every applied batch (S9 followers). */
  readonly wakeups: JournalWakeups;
  readonly isClosed: () => boolean;
}

/** Attempts to apply a committed batch before the store gives up until reopened. */
const APPLY_ATTEMPTS = 3;

export function createWriteAhead(parts: WriteAheadParts): WriteAhead {
  const { js, jsm, walStream, prefix, buckets, journals, wakeups, isClosed } = parts;
  const { planClaims, takeClaims, releaseClaims, releaseFreed } = parts.claims;
  let broken: Error | undefined;
  // Commits run one at a time, so they resolve in the order they were made.
  let queue: Promise<void> = Promise.resolve();

  const batchApply = createBatchApply(buckets, journals);
  const { checkEntries, apply } = batchApply;
  const fence = createPartitionFence({ ...parts, batchApply });

  /**
   * Step (4). Every store on a prefix replays the write-ahead messages it finds at open,
   * so another store may have applied and deleted this one already: that is done too.
   */
  const deleteWriteAhead = async (seq: number): Promise<void> => {
    try {
      await jsm.streams.deleteMessage(walStream, seq, false);
    } catch (error) {
      if (isAlreadyDeleted(error)) return;
      throw error;
    }
  };

  const applyCommitted = async (batch: StoreBatch, walSeq: number): Promise<void> => {
    let lastError: unknown;
    for (let attempt = 0; attempt < APPLY_ATTEMPTS; attempt++) {
      try {
        await apply(batch);
        // S9: the entries are durable and readable; followers of their sessions re-read.
        if (batch.entries !== undefined && batch.entries.length > 0) {
          wakeups.notify(new Set(batch.entries.map((e) => e.sessionId)));
        }
        await deleteWriteAhead(walSeq);
        return;
      } catch (error) {
        lastError = error;
        for (const entry of batch.entries ?? []) journals.forget(entry.sessionId);
        await sleep(50 * (attempt + 1));
      }
    }
    broken = lastError instanceof Error ? lastError : new Error(String(lastError));
    throw asStoreError(lastError, "cannot apply a committed batch");
  };

  const checkNotBroken = (): void => {
    if (broken !== undefined)
      throw storeFailure("a committed batch could not be applied; reopen the store", broken);
  };

  const commitNow = async (batch: StoreBatch, madeUnder: number | undefined): Promise<void> => {
    // Not checkOpen(): commits made before close() still run (close finishes them).
    checkNotBroken();
    const partition = fence.partitionOf(batch);
    if (partition !== undefined) return fence.commit(batch, partition, madeUnder);
    await checkEntries(batch.entries ?? []);
    const records = batch.sessions ?? [];
    const { claims, states } = await planClaims(records);
    const taken = await takeClaims(claims, states, records);
    let walSeq: number;
    try {
      const ack = await js.publish(`${prefix}.wal`, encodeJson(batchToJson(batch)), { msgID: randomUUID() });
      walSeq = ack.seq;
    } catch (error) {
      await releaseClaims(taken);
      throw asStoreError(error, "cannot commit the batch");
    }
    await applyCommitted(batch, walSeq);
    await releaseFreed(claims, states, taken);
  };

  /** Applies batches committed by a store that stopped before applying them. */
  const replay = async (): Promise<void> => {
    const info = await jsm.streams.info(walStream);
    if (info.state.messages === 0) return;
    const last = info.state.last_seq;
    const consumer = await js.consumers.get(walStream);
    const messages = await consumer.consume({ max_messages: 64 });
    const pending: { batch: StoreBatch; seq: number }[] = [];
    try {
      for await (const m of messages) {
        pending.push({ batch: batchFromJson(decodeJson(m.data)), seq: m.seq });
        if (m.seq >= last) break;
        if (pending.length >= 64) {
          for (const p of pending.splice(0)) await applyCommitted(p.batch, p.seq);
        }
      }
    } finally {
      messages.stop();
    }
    for (const p of pending) await applyCommitted(p.batch, p.seq);
  };

  return {
    commit(batch) {
      if (isClosed()) return Promise.reject(storeClosed("jetstream"));
      const copy = copyBatch(batch);
      const madeUnder = fence.claimMadeUnder(copy);
      const run = queue.then(() => commitNow(copy, madeUnder));
      queue = run.then(
        () => undefined,
        () => undefined,
      );
      return run.catch((error: unknown) => {
        throw natsStoreError(error, "cannot commit the batch");
      });
    },
    async claimPartition(partition) {
      if (isClosed()) throw storeClosed("jetstream");
      checkNotBroken();
      await fence.claim(partition);
    },
    releasePartition: (partition) => fence.release(partition),
    confirmPartition(partition) {
      // After the commits already queued: their sequences are then this store's head.
      const run = queue.then(() => fence.confirm(partition));
      queue = run.then(
        () => undefined,
        () => undefined,
      );
      return run;
    },
    replay,
    broken: () => broken,
    settled: () => queue,
  };
}
