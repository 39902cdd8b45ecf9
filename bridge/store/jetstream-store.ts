import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  StorageType,
} from "@nats-io/jetstream";
import { type KV, Kvm } from "@nats-io/kv";
import { connect, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import { createCorrelationClaims } from "./jetstream-claims.js";
import { natsStoreError } from "./jetstream-errors.js";
import { createJetStreamJournals, type JetStreamJournals } from "./jetstream-journal.js";
import { createJetStreamRecords } from "./jetstream-records.js";
import { createWriteAhead } from "./jetstream-write-ahead.js";
import { followStoredJournal } from "./journal-follow.js";
import { createJournalWakeups, type JournalWakeups } from "./journal-wakeups.js";
import type { JournalRecord } from "./records.js";
import type { SessionStore } from "./session-store.js";
import { asStoreError, storeClosed, storeFailure } from "./store-errors.js";
import { checkJournalRange } from "./store-query.js";

/**
 * The session store on NATS JetStream, for bridges that share sessions on a NATS cluster.
 *
 * Layout, all names under one prefix (default "sb"):
 * - `<prefix>_sessions` (KV): session records by id.
 * - `<prefix>_correlation` (KV): S5 claims, key = service + correlation key, value = the
 *   session holding it; see jetstream-claims.ts.
 * - `<prefix>_idempotency` and `<prefix>_outbox` (KV): S8 records and the S10 outbox.
 * - `<prefix>_journal` (stream): one subject per session, see jetstream-journal.ts.
 * - `<prefix>_wal` (stream): the write-ahead log of batches.
 *
 * Atomicity of a StoreBatch (one write-ahead message is the commit point) is described
 * in jetstream-write-ahead.ts, the partition fences of several replicas in
 * jetstream-partition-fence.ts; reads of the buckets in jetstream-records.ts.
 *
 * One store instance writes a given session at a time (the bridge's engine orders
 * commits per session, and several replicas partition sessions); the journal's expected
 * last subject sequence turns a violation of that into a failed commit, never an
 * interleaved journal.
 */
export interface JetStreamStoreOptions {
  /** Server URLs; ignored when `connection` is given. */
  readonly servers?: string | readonly string[];
  /** An open connection to use; the store then leaves it open on close(). */
  readonly connection?: NatsConnection;
  /** Extra connection options (authentication, TLS) when the store connects itself. */
  readonly connectOptions?: Partial<NodeConnectionOptions>;
  /** Prefix of every bucket, stream and subject: letters, digits, '_' and '-'. Default "sb". */
  readonly prefix?: string;
  /** JetStream replication factor of every bucket and stream (1, 3 or 5). Default 1. */
  readonly replicas?: number;
  /**
   * Several replicas (DESIGN §7): sessions fall into partitions and this store writes only
   * the partitions it has claimed (claimPartition). See "Partitions and fencing" above.
   */
  readonly partitions?: StorePartitions;
}

/** How the store learns a session's partition (bridge/cluster/partitions.ts). */
export interface StorePartitions {
  readonly count: number;
  of(sessionId: string): number;
  /**
   * Called when the store stops writing a partition on its own: another replica fenced it
   * out, or a commit's outcome is unknown (NATS failed mid-publish). The owner re-claims
   * it (which replays the partition's last batch) before it writes there again.
   */
  onLost?(partition: number, cause: Error): void;
}

/** The JetStream store, with what tests and diagnostics read of it. */
export interface JetStreamSessionStore extends SessionStore {
  /** Journal followers registered now (S9). */
  followers(): number;
  /**
   * Several replicas: makes this store the partition's only writer. Applies the
   * partition's last write-ahead batch (its previous writer may have stopped before
   * applying it), then publishes a fence message on the partition's write-ahead subject,
   * expecting the subject's last sequence it read: any other store's next commit there
   * then fails before its commit point. Call only while holding the partition's lease.
   */
  claimPartition(partition: number): Promise<void>;
  /** Stops writing the partition: its commits are refused with UNAVAILABLE from now on. */
  releasePartition(partition: number): void;
  /**
   * Several replicas: true when this store still writes the partition and no other store
   * has written or fenced it since this store's last commit there (the write-ahead
   * subject's last sequence, read from its stream leader after the commits already made,
   * is the one this store wrote). A moved subject makes the store stop writing the
   * partition (StorePartitions.onLost); a read that fails answers false and keeps it.
   */
  confirmPartition(partition: number): Promise<boolean>;
}

export async function createJetStreamStore(options: JetStreamStoreOptions): Promise<JetStreamSessionStore> {
  const prefix = options.prefix ?? "sb";
  if (!/^[A-Za-z0-9_-]+$/.test(prefix)) throw storeFailure(`invalid JetStream store prefix "${prefix}"`);
  const replicas = options.replicas ?? 1;
  if (!Number.isSafeInteger(replicas) || replicas < 1) throw storeFailure(`invalid replicas ${replicas}`);
  const owned = options.connection === undefined;
  let nc: NatsConnection;
  try {
    nc =
      options.connection ??
      (await connect({
        ...options.connectOptions,
        servers: typeof options.servers === "string" ? options.servers : [...(options.servers ?? [])],
      }));
  } catch (error) {
    throw asStoreError(error, "cannot connect to NATS for the JetStream store");
  }
  try {
    const js = jetstream(nc);
    const jsm = await jetstreamManager(nc);
    const journalStream = `${prefix}_journal`;
    const walStream = `${prefix}_wal`;
    await ensureStream(jsm, journalStream, `${prefix}.journal.*`, replicas);
    await ensureStream(jsm, walStream, `${prefix}.wal`, replicas);
    const kvm = new Kvm(js);
    // Reads go to each bucket's stream leader, not to any replica (direct gets): a replica
    // may lag the last write by a moment, or by minutes after a node restarts, and a new
    // owner that loaded a session from it would answer from before the last commit
    // (DESIGN §7; S7, S8 verdicts from a stale session, docs/jetstream-store.md).
    const bucket = (name: string): Promise<KV> =>
      kvm.create(`${prefix}_${name}`, { replicas, history: 1, allow_direct: false });
    const buckets = {
      sessions: await bucket("sessions"),
      correlation: await bucket("correlation"),
      idempotency: await bucket("idempotency"),
      outbox: await bucket("outbox"),
    };
    const journals = createJetStreamJournals(js, jsm, journalStream, prefix);
    const partitionStream = `${prefix}_pwal`;
    if (options.partitions !== undefined) {
      await ensureStream(jsm, partitionStream, `${prefix}.pwal.*`, replicas, { max_msgs_per_subject: 1 });
    }
    const store = buildStore({
      nc,
      owned,
      js,
      jsm,
      walStream,
      partitionStream,
      prefix,
      buckets,
      journals,
      partitions: options.partitions,
    });
    await store.replay();
    return store.api;
  } catch (error) {
    if (owned) await nc.close().catch(() => undefined);
    throw asStoreError(error, "cannot open the JetStream store");
  }
}

async function ensureStream(
  jsm: JetStreamManager,
  name: string,
  subject: string,
  replicas: number,
  extra: { max_msgs_per_subject?: number } = {},
): Promise<void> {
  try {
    await jsm.streams.info(name);
  } catch {
    await jsm.streams.add({
      name,
      subjects: [subject],
      storage: StorageType.File,
      num_replicas: replicas,
      ...extra,
    });
  }
}

interface Parts {
  readonly nc: NatsConnection;
  readonly owned: boolean;
  readonly js: JetStreamClient;
  readonly jsm: JetStreamManager;
  readonly walStream: string;
  readonly partitionStream: string;
  readonly prefix: string;
  readonly partitions: StorePartitions | undefined;
  readonly buckets: { sessions: KV; correlation: KV; idempotency: KV; outbox: KV };
  readonly journals: JetStreamJournals;
}

function buildStore(parts: Parts): { api: JetStreamSessionStore; replay: () => Promise<void> } {
  const { nc, buckets, journals } = parts;
  let closed = false;
  const wakeups = createJournalWakeups();
  const records = createJetStreamRecords(buckets, journals);
  const claims = createCorrelationClaims(buckets.correlation, records.readSession);
  const writeAhead = createWriteAhead({ ...parts, claims, wakeups, isClosed: () => closed });

  const checkOpen = (): void => {
    if (closed) throw storeClosed("jetstream");
    const broken = writeAhead.broken();
    if (broken !== undefined)
      throw storeFailure("a committed batch could not be applied; reopen the store", broken);
  };

  const readJournal = async (
    sessionId: string,
    fromIndex: number,
    limit: number,
  ): Promise<readonly JournalRecord[]> => {
    checkOpen();
    checkJournalRange(fromIndex, limit);
    try {
      return await journals.read(sessionId, fromIndex, limit);
    } catch (error) {
      // A read cut short by close() (a woken follower's, say) is the store shutting down.
      if (closed) throw storeClosed("jetstream");
      throw natsStoreError(error, "cannot read the journal");
    }
  };

  /**
   * Followers wake on this store's commits and, through a consumer on the session's
   * journal subject, on entries other stores on the prefix append (S9).
   */
  const sharedWakeups: JournalWakeups = {
    watch(sessionId) {
      const watch = wakeups.watch(sessionId);
      const stop = closed
        ? () => undefined
        : journals.watchStored(sessionId, () => wakeups.notify([sessionId]));
      return {
        reset: () => watch.reset(),
        wait: (signal) => watch.wait(signal),
        release() {
          stop();
          watch.release();
        },
      };
    },
    notify: (sessionIds) => wakeups.notify(sessionIds),
    close: () => wakeups.close(),
    followers: () => wakeups.followers(),
  };

  const api: JetStreamSessionStore = {
    kind: "jetstream",

    commit: (batch) => writeAhead.commit(batch),

    async recover() {
      checkOpen();
      return records.recover();
    },

    async getSession(id) {
      checkOpen();
      return records.readSession(id);
    },

    async findSessionByCorrelation(service, correlationKey) {
      checkOpen();
      return claims.holderOf(service, correlationKey);
    },

    async listSessions(query) {
      checkOpen();
      return records.listSessions(query);
    },

    readJournal,

    followJournal: (sessionId, fromIndex, signal) =>
      followStoredJournal({ readJournal, wakeups: sharedWakeups }, sessionId, fromIndex, signal),

    async findBySeq(sessionId, seq) {
      checkOpen();
      if (seq <= 0) return undefined;
      try {
        return await journals.findBy(sessionId, (e) => e.seq === seq);
      } catch (error) {
        throw natsStoreError(error, "cannot read the journal");
      }
    },

    async findByMessageId(sessionId, messageId) {
      checkOpen();
      try {
        // An outcome is not found by its own id: only an entry that answers none.
        return await journals.findBy(sessionId, (e) => e.messageId === messageId && e.inReplyTo === "");
      } catch (error) {
        throw natsStoreError(error, "cannot read the journal");
      }
    },

    async getIdempotency(principal, key) {
      checkOpen();
      return records.getIdempotency(principal, key);
    },

    async purge(endedBeforeMs, idempotencyBeforeMs) {
      checkOpen();
      return records.purge(endedBeforeMs, idempotencyBeforeMs);
    },

    async close() {
      if (closed) return;
      closed = true;
      // Waiting followers wake, re-read and reject with SHUTTING_DOWN.
      wakeups.close();
      await writeAhead.settled();
      if (parts.owned) await nc.close();
    },

    [Symbol.asyncDispose]() {
      return this.close();
    },

    followers: () => wakeups.followers(),

    claimPartition: (partition) => writeAhead.claimPartition(partition),
    releasePartition: (partition) => writeAhead.releasePartition(partition),
    confirmPartition: (partition) => writeAhead.confirmPartition(partition),
  };

  return { api, replay: () => writeAhead.replay() };
}
