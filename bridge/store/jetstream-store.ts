import { randomUUID } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import {
  type JetStreamClient,
  type JetStreamManager,
  jetstream,
  jetstreamManager,
  StorageType,
} from "@nats-io/jetstream";
import { type KV, type KvEntry, Kvm } from "@nats-io/kv";
import { connect, type NatsConnection, type NodeConnectionOptions } from "@nats-io/transport-node";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import { createCorrelationClaims, readValue } from "./jetstream-claims.js";
import {
  batchFromJson,
  batchToJson,
  decodeJson,
  encodeJson,
  idempotencyFromJson,
  idempotencyToJson,
  sessionFromJson,
  sessionToJson,
  token,
} from "./jetstream-codec.js";
import { isAlreadyDeleted, isCasFailure, natsStoreError, partitionMoving } from "./jetstream-errors.js";
import { createJetStreamJournals, type JetStreamJournals } from "./jetstream-journal.js";
import { checkJournalAppend } from "./journal-append.js";
import { followStoredJournal } from "./journal-follow.js";
import { createJournalWakeups, type JournalWakeups } from "./journal-wakeups.js";
import { copyBatch } from "./record-copy.js";
import type { JournalRecord, OutboxRecord, SessionRecord } from "./records.js";
import { compareNewestFirst, compareOldestFirst, compareText } from "./session-order.js";
import type { SessionStore, StoreBatch } from "./session-store.js";
import { asStoreError, storeClosed, storeFailure } from "./store-errors.js";
import { checkJournalRange, checkPageSize, decodePageToken, encodePageToken } from "./store-query.js";

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

/** Attempts to apply a committed batch before the store gives up until reopened. */
const APPLY_ATTEMPTS = 3;
/** Attempts to apply a partition's batch: about 10 s of backoff, longer than a NATS leader election. */
const PARTITION_APPLY_ATTEMPTS = 14;
/** Fence publishes a claim tries while the previous writer still commits. */
const CLAIM_ATTEMPTS = 5;
/** The field that tells a fence message from a batch on a partition's write-ahead subject. */
const FENCE_FIELD = "fence";
/** Concurrent KV reads when a query reads many records. */
const READ_CONCURRENCY = 32;

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
  const { nc, js, jsm, walStream, partitionStream, prefix, buckets, journals, partitions } = parts;
  /** Claimed partitions → the last sequence this store wrote on their write-ahead subject. */
  const heads = new Map<number, number>();
  let closed = false;
  let broken: Error | undefined;
  // Commits run one at a time, so they resolve in the order they were made.
  let queue: Promise<void> = Promise.resolve();
  const wakeups = createJournalWakeups();

  const checkOpen = (): void => {
    if (closed) throw storeClosed("jetstream");
    if (broken !== undefined)
      throw storeFailure("a committed batch could not be applied; reopen the store", broken);
  };

  const readSession = async (id: string): Promise<SessionRecord | undefined> => {
    const entry = await readValue(buckets.sessions, token(id));
    return entry === undefined ? undefined : sessionFromJson(decodeJson(entry.value));
  };

  const readAll = async <T>(kv: KV, filter: string, decode: (entry: KvEntry) => T): Promise<T[]> => {
    const keys: string[] = [];
    for await (const key of await kv.keys(filter)) keys.push(key);
    const out: T[] = [];
    for (let i = 0; i < keys.length; i += READ_CONCURRENCY) {
      const got = await Promise.all(keys.slice(i, i + READ_CONCURRENCY).map((k) => readValue(kv, k)));
      for (const entry of got) if (entry !== undefined) out.push(decode(entry));
    }
    return out;
  };

  const allSessions = (): Promise<SessionRecord[]> =>
    readAll(buckets.sessions, ">", (e) => sessionFromJson(decodeJson(e.value)));

  const { planClaims, takeClaims, releaseClaims, releaseFreed, holderOf } = createCorrelationClaims(
    buckets.correlation,
    readSession,
  );

  /**
   * S9 before the commit point: the batch's entries must continue each session's stored
   * journal (checkJournalAppend), else the whole batch is refused with JOURNAL_CONFLICT
   * and nothing is written.
   */
  const checkEntries = async (entries: readonly JournalRecord[]): Promise<void> => {
    const last = new Map<string, number>();
    for (const entry of entries) {
      if (!last.has(entry.sessionId)) last.set(entry.sessionId, await journals.lastIndex(entry.sessionId));
    }
    checkJournalAppend(entries, (sessionId) => last.get(sessionId) ?? 0);
  };

  /** Step (3): every part of a committed batch, each write safe to repeat. */
  const apply = async (batch: StoreBatch): Promise<void> => {
    const bySession = new Map<string, JournalRecord[]>();
    for (const entry of batch.entries ?? []) {
      const list = bySession.get(entry.sessionId);
      if (list === undefined) bySession.set(entry.sessionId, [entry]);
      else list.push(entry);
    }
    for (const [sessionId, entries] of bySession) await journals.append(sessionId, entries);
    for (const record of batch.sessions ?? []) {
      await buckets.sessions.put(token(record.id), encodeJson(sessionToJson(record)));
    }
    for (const record of batch.idempotency ?? []) {
      await buckets.idempotency.put(
        `${token(record.principal)}.${token(record.key)}`,
        encodeJson(idempotencyToJson(record)),
      );
    }
    for (const item of batch.outboxAdd ?? []) {
      await buckets.outbox.put(outboxKey(item.sessionId, item.messageId), encodeJson(item));
    }
    for (const item of batch.outboxRemove ?? []) {
      await buckets.outbox.purge(outboxKey(item.sessionId, item.messageId));
    }
  };

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
  const applyPartitionBatch = async (batch: StoreBatch): Promise<void> => {
    let lastError: unknown;
    for (let attempt = 0; attempt < PARTITION_APPLY_ATTEMPTS; attempt++) {
      try {
        await apply(batch);
        if (batch.entries !== undefined && batch.entries.length > 0) {
          wakeups.notify(new Set(batch.entries.map((e) => e.sessionId)));
        }
        return;
      } catch (error) {
        lastError = error;
        for (const entry of batch.entries ?? []) journals.forget(entry.sessionId);
        await sleep(Math.min(1000, 50 * 2 ** attempt));
      }
    }
    throw lastError;
  };

  /** The one partition a batch writes, when the store is partitioned and it names a session. */
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
    try {
      const ack = await js.publish(`${prefix}.pwal.${partition}`, encodeJson(batchToJson(batch)), {
        msgID: randomUUID(),
        expect: { lastSubjectSequence: expected },
      });
      heads.set(partition, ack.seq);
    } catch (error) {
      // Fenced out: nothing was written, the claims go back. Any other failure leaves the
      // outcome unknown: the claims stay (they turn stale if the batch was not stored) and
      // the partition is claimed again, which applies the batch if it was stored.
      if (isCasFailure(error)) await releaseClaims(taken);
      losePartition(partition, error);
      throw partitionMoving(partition, isCasFailure(error) ? "another replica took it over" : "NATS failed");
    }
    try {
      await applyPartitionBatch(batch);
    } catch (error) {
      losePartition(partition, error);
      throw partitionMoving(partition, "its last batch is not applied yet");
    }
  };

  const commitNow = async (batch: StoreBatch): Promise<void> => {
    // Not checkOpen(): commits made before close() still run (close finishes them).
    if (broken !== undefined)
      throw storeFailure("a committed batch could not be applied; reopen the store", broken);
    const partition = partitionOf(batch);
    if (partition !== undefined) {
      if (!heads.has(partition)) throw partitionMoving(partition, "this replica does not write it");
      try {
        await checkEntries(batch.entries ?? []);
        const records = batch.sessions ?? [];
        const { claims, states } = await planClaims(records);
        const taken = await takeClaims(claims, states, records);
        await commitInPartition(batch, partition, taken);
        await releaseFreed(claims, states, taken);
        return;
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
    }
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

  const claimPartition = async (partition: number): Promise<void> => {
    checkOpen();
    if (partitions === undefined) throw storeFailure("the store was opened without partitions");
    const subject = `${prefix}.pwal.${partition}`;
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
      const last = await jsm.streams.getMessage(partitionStream, { last_by_subj: subject });
      if (last !== null) {
        const body = decodeJson(last.data);
        // The previous writer's last batch: it may have stopped before applying it.
        if (!(FENCE_FIELD in body)) await applyPartitionBatch(batchFromJson(body));
      }
      try {
        const ack = await js.publish(subject, encodeJson({ [FENCE_FIELD]: Date.now() }), {
          msgID: randomUUID(),
          expect: { lastSubjectSequence: last?.seq ?? 0 },
        });
        heads.set(partition, ack.seq);
        return;
      } catch (error) {
        // The old writer committed once more between the read and the fence: apply that too.
        if (!isCasFailure(error)) throw asStoreError(error, `cannot claim partition ${partition}`);
      }
    }
    throw partitionMoving(partition, "its previous writer keeps committing");
  };

  const confirmPartition = (partition: number): Promise<boolean> => {
    // After the commits already queued: their sequences are then this store's head.
    const run = queue.then(async (): Promise<boolean> => {
      const head = heads.get(partition);
      if (closed || head === undefined) return false;
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
      losePartition(
        partition,
        new Error(
          `partition ${partition} was written by another store (write-ahead sequence ${last}, not ${head})`,
        ),
      );
      return false;
    });
    queue = run.then(
      () => undefined,
      () => undefined,
    );
    return run;
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

    commit(batch) {
      if (closed) return Promise.reject(storeClosed("jetstream"));
      const copy = copyBatch(batch);
      const run = queue.then(() => commitNow(copy));
      queue = run.then(
        () => undefined,
        () => undefined,
      );
      return run.catch((error: unknown) => {
        throw natsStoreError(error, "cannot commit the batch");
      });
    },

    async recover() {
      checkOpen();
      const live = (await allSessions()).filter((s) => s.state === "active").sort(compareOldestFirst);
      const outbox = await readAll(
        buckets.outbox,
        ">",
        (e) => decodeJson(e.value) as unknown as OutboxRecord,
      );
      outbox.sort(
        (a, b) =>
          compareText(a.sessionId, b.sessionId) || a.index - b.index || compareText(a.messageId, b.messageId),
      );
      return {
        sessions: live,
        outbox: outbox.map((o) => ({ sessionId: o.sessionId, messageId: o.messageId, index: o.index })),
      };
    },

    async getSession(id) {
      checkOpen();
      return readSession(id);
    },

    async findSessionByCorrelation(service, correlationKey) {
      checkOpen();
      return holderOf(service, correlationKey);
    },

    async listSessions(query) {
      checkOpen();
      checkPageSize(query.pageSize);
      const after = decodePageToken(query.pageToken);
      const matching = (await allSessions())
        .filter(
          (s) =>
            (query.service === undefined || s.service === query.service) &&
            (query.state === undefined || s.state === query.state) &&
            (query.principal === undefined || s.principal === query.principal) &&
            (after === undefined || compareNewestFirst(s, after) > 0),
        )
        .sort(compareNewestFirst);
      const page = matching.slice(0, query.pageSize);
      const last = page[page.length - 1];
      return {
        sessions: page,
        nextPageToken:
          matching.length > page.length && last !== undefined ? encodePageToken(last) : undefined,
      };
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
      const entry = await readValue(buckets.idempotency, `${token(principal)}.${token(key)}`);
      return entry === undefined ? undefined : idempotencyFromJson(decodeJson(entry.value));
    },

    async purge(endedBeforeMs, idempotencyBeforeMs) {
      checkOpen();
      let sessions = 0;
      for (const s of await allSessions()) {
        if (s.state === "active" || s.endedAtMs === undefined || !(s.endedAtMs < endedBeforeMs)) continue;
        await journals.remove(s.id);
        for await (const key of await buckets.outbox.keys(`${token(s.id)}.>`))
          await buckets.outbox.purge(key);
        await buckets.sessions.purge(token(s.id));
        sessions++;
      }
      let idempotency = 0;
      const records = await readAll(buckets.idempotency, ">", (e) =>
        idempotencyFromJson(decodeJson(e.value)),
      );
      for (const record of records) {
        if (!(record.createdAtMs < idempotencyBeforeMs)) continue;
        await buckets.idempotency.purge(`${token(record.principal)}.${token(record.key)}`);
        idempotency++;
      }
      return { sessions, idempotency };
    },

    async close() {
      if (closed) return;
      closed = true;
      // Waiting followers wake, re-read and reject with SHUTTING_DOWN.
      wakeups.close();
      await queue;
      if (parts.owned) await nc.close();
    },

    [Symbol.asyncDispose]() {
      return this.close();
    },

    followers: () => wakeups.followers(),

    claimPartition,

    releasePartition(partition) {
      heads.delete(partition);
    },

    confirmPartition,
  };

  return { api, replay };
}

function outboxKey(sessionId: string, messageId: string): string {
  return `${token(sessionId)}.${token(messageId)}`;
}
