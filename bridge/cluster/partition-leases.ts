import { type KV, Kvm } from "@nats-io/kv";
import type { NatsConnection } from "@nats-io/transport-node";
import { type Logger, silentLogger } from "../logger.js";
import { type LeaseValue, LeaseView } from "./lease-view.js";

export interface PartitionLeasesOptions {
  readonly connection: NatsConnection;
  /** The store's prefix: the bucket is `<prefix>_cluster`. */
  readonly prefix: string;
  /** This replica's name, unique among the replicas ([A-Za-z0-9_-]). */
  readonly replica: string;
  readonly partitions: number;
  /** A lease not renewed for this long has lapsed and may be taken over. */
  readonly leaseTtlMs: number;
  /** JetStream replication factor of the bucket. */
  readonly replicas: number;
  /**
   * The replica leased these partitions: resolve once it serves them (the store fenced
   * them and the engine loaded their sessions); reject to give them back.
   */
  readonly onAcquired: (partitions: readonly number[]) => Promise<void>;
  /** The replica no longer owns this partition (lease lost or released). */
  readonly onLost: (partition: number) => void;
  /** Before a partition is handed over on purpose: resolves when its calls in flight are done. */
  readonly beforeRelease: (partition: number) => Promise<void>;
  readonly logger?: Logger;
}

/**
 * Partition leases in a KV bucket (DESIGN §7): key `lease.<n>` holds the owner of
 * partition n; key `member.<replica>` is each replica's heartbeat. Every tick (a quarter
 * of the TTL) a replica renews its leases with compare-and-set on the revision it holds,
 * counts the replicas whose heartbeat moved within the TTL, and takes free or lapsed
 * partitions up to its fair share (the partitions divided by the live replicas, rounded
 * up); above its share it hands one partition over per tick, after its calls in flight.
 * A lease lapses when its revision has not changed for the TTL as seen by the taker's own
 * clock, so no clocks are compared. Taking one is a CAS on the revision seen, so two
 * replicas never both win it; a lost CAS while renewing means the lease is gone and the
 * partition is dropped at once (the store's fence, jetstream-store.ts, makes any write
 * already on its way fail).
 */
export class PartitionLeases {
  readonly #options: PartitionLeasesOptions;
  readonly #logger: Logger;
  /** Every lease and heartbeat as this replica sees it; set by start(). */
  #view: LeaseView | undefined;
  /** Leases held: partition → revision and when its last renew was sent. */
  readonly #held = new Map<number, { revision: number; sentAtMs: number }>();
  /** Held partitions whose sessions are loaded: calls may be served. */
  readonly #serving = new Set<number>();
  #kv: KV | undefined;
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #busy: Promise<void> | undefined;
  #ticking = false;
  /** Held partitions the store gave up while they were being loaded: loaded again after. */
  readonly #lostWhileLoading = new Set<number>();

  constructor(options: PartitionLeasesOptions) {
    this.#options = options;
    this.#logger = options.logger ?? silentLogger;
  }

  async start(): Promise<void> {
    const kvm = new Kvm(this.#options.connection);
    this.#kv = await kvm.create(`${this.#options.prefix}_cluster`, {
      replicas: this.#options.replicas,
      history: 1,
    });
    this.#view = new LeaseView(this.#kv, this.#options.leaseTtlMs, this.#logger);
    await this.#view.watch();
    await this.#heartbeat();
    // A first round at once, so a replica that finds partitions free serves them before it
    // reports ready; bounded, since taking over what others hold waits for their TTL.
    await this.#tick();
    await Promise.race([
      this.#busy,
      new Promise<void>((resolve) => setTimeout(resolve, this.#options.leaseTtlMs).unref()),
    ]);
    this.#schedule();
  }

  /** The replica that owns `partition` now, or undefined while it has no live lease. */
  ownerOf(partition: number): string | undefined {
    if (this.#serving.has(partition)) return this.#options.replica;
    const seen = this.#view?.get(leaseKey(partition));
    if (seen?.holder === undefined || Date.now() - seen.seenAtMs > this.#options.leaseTtlMs) return undefined;
    return seen.holder;
  }

  /** True while this replica owns the partition and has loaded its sessions. */
  serves(partition: number): boolean {
    return this.#serving.has(partition);
  }

  /** Partitions this replica serves now. */
  served(): readonly number[] {
    return [...this.#serving];
  }

  /**
   * The store stopped writing a partition on its own (see StorePartitions.onLost): stop
   * serving it, and load it again while the lease is still ours.
   */
  reload(partition: number): void {
    if (!this.#serving.delete(partition)) {
      // Lost while being loaded (a commit of the load's own recovery failed after the
      // claim): that load must not end in serving a partition the store no longer
      // writes; it is loaded again once the running load ends.
      if (this.#held.has(partition)) this.#lostWhileLoading.add(partition);
      return;
    }
    this.#options.onLost(partition);
    this.#acquire([partition]);
  }

  /** Stops renewing and hands every lease back, so the others take over at once. */
  async stop(): Promise<void> {
    if (this.#stopped) return;
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#view?.stop();
    await this.#busy?.catch(() => undefined);
    const kv = this.#kv;
    for (const [partition, lease] of this.#held) {
      this.#serving.delete(partition);
      this.#options.onLost(partition);
      await kv?.delete(leaseKey(partition), { previousSeq: lease.revision }).catch(() => undefined);
    }
    this.#held.clear();
    await kv?.delete(memberKey(this.#options.replica)).catch(() => undefined);
  }

  #schedule(): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(
      () => {
        void this.#tick().finally(() => this.#schedule());
      },
      Math.max(50, Math.floor(this.#options.leaseTtlMs / 4)),
    );
  }

  async #heartbeat(): Promise<void> {
    const kv = this.#kv;
    if (kv === undefined) return;
    const revision = await kv.put(memberKey(this.#options.replica), this.#value());
    this.#view?.beat(revision);
    this.#view?.note(memberKey(this.#options.replica), this.#value(), revision);
  }

  #value(): Uint8Array {
    return new TextEncoder().encode(
      JSON.stringify({ replica: this.#options.replica, renewedAtMs: Date.now() } satisfies LeaseValue),
    );
  }

  async #tick(): Promise<void> {
    if (this.#stopped || this.#ticking) return;
    this.#ticking = true;
    try {
      await this.#heartbeat().catch((error: unknown) =>
        this.#logger.warn({ err: error }, "heartbeat failed"),
      );
      await this.#renew();
      this.#view?.check();
      this.#balance();
    } finally {
      this.#ticking = false;
    }
  }

  async #renew(): Promise<void> {
    const kv = this.#kv;
    if (kv === undefined) return;
    const ttl = this.#options.leaseTtlMs;
    await Promise.all(
      [...this.#held].map(async ([partition, lease]) => {
        const sentAtMs = Date.now();
        try {
          const revision = await kv.update(leaseKey(partition), this.#value(), lease.revision);
          if (this.#held.get(partition) !== lease) return;
          this.#held.set(partition, { revision, sentAtMs });
          this.#view?.note(leaseKey(partition), this.#value(), revision);
        } catch (error) {
          if (this.#held.get(partition) !== lease) return;
          // A lost CAS: someone took it. Anything else: keep it while the last renew that
          // succeeded covers three quarters of the TTL. Others take it only once they have
          // seen no renew for the whole TTL, so this replica has stopped serving by then.
          if (isCasFailure(error) || Date.now() - lease.sentAtMs >= (ttl * 3) / 4)
            this.#drop(partition, error);
        }
      }),
    );
  }

  #drop(partition: number, cause: unknown): void {
    this.#held.delete(partition);
    this.#serving.delete(partition);
    this.#lostWhileLoading.delete(partition);
    this.#logger.warn({ partition, err: cause }, "partition lease lost");
    this.#options.onLost(partition);
  }

  /** Replicas whose heartbeat moved within the TTL, this one included. */
  #liveReplicas(): number {
    const now = Date.now();
    let live = 0;
    for (const [key, seen] of this.#view?.entries() ?? []) {
      if (!key.startsWith("member.")) continue;
      if (seen.holder === this.#options.replica || now - seen.seenAtMs <= this.#options.leaseTtlMs) live++;
    }
    return Math.max(1, live);
  }

  #balance(): void {
    if (this.#busy !== undefined) return;
    const { partitions, replica, leaseTtlMs } = this.#options;
    const fair = Math.ceil(partitions / this.#liveReplicas());
    if (this.#held.size > fair) {
      const extra = [...this.#held.keys()].find((p) => this.#serving.has(p));
      if (extra !== undefined) this.#handOver(extra);
      return;
    }
    if (this.#held.size >= fair) return;
    const now = Date.now();
    const free: { partition: number; revision: number | undefined }[] = [];
    // Start at a place of this replica's own, so replicas joining together pick apart.
    const start = hashOf(replica) % partitions;
    for (let i = 0; i < partitions && free.length < fair - this.#held.size; i++) {
      const partition = (start + i) % partitions;
      if (this.#held.has(partition)) continue;
      const seen = this.#view?.get(leaseKey(partition));
      if (seen === undefined || seen.holder === undefined) {
        // Never written, or handed back (deleted): a create takes it.
        free.push({ partition, revision: undefined });
      } else if (now - seen.seenAtMs > leaseTtlMs) {
        free.push({ partition, revision: seen.revision });
      }
    }
    if (free.length > 0) this.#take(free);
  }

  #take(free: readonly { partition: number; revision: number | undefined }[]): void {
    const kv = this.#kv;
    if (kv === undefined) return;
    this.#queue(async () => {
      const won: number[] = [];
      for (const { partition, revision } of free) {
        const sentAtMs = Date.now();
        try {
          const value = this.#value();
          const next =
            revision === undefined
              ? await kv.create(leaseKey(partition), value)
              : await kv.update(leaseKey(partition), value, revision);
          this.#held.set(partition, { revision: next, sentAtMs });
          this.#lostWhileLoading.delete(partition);
          this.#view?.note(leaseKey(partition), value, next);
          won.push(partition);
        } catch (error) {
          if (!isCasFailure(error)) this.#logger.warn({ partition, err: error }, "cannot take a lease");
          else await this.#refresh(partition);
        }
      }
      if (won.length > 0) await this.#load(won);
    });
  }

  /**
   * A take lost its CAS: what this replica saw of the lease is behind the bucket (an
   * update the watch has not delivered, or missed). Reads it again so the next tick
   * decides on the lease as it is, instead of retrying a revision that can never win.
   */
  async #refresh(partition: number): Promise<void> {
    try {
      const entry = await this.#kv?.get(leaseKey(partition));
      if (entry === null || entry === undefined) return;
      this.#view?.note(entry.key, entry.operation === "PUT" ? entry.value : undefined, entry.revision);
    } catch (error) {
      this.#logger.warn({ partition, err: error }, "cannot read a lease");
    }
  }

  #acquire(partitions: readonly number[]): void {
    this.#queue(() => this.#load(partitions.filter((p) => this.#held.has(p) && !this.#serving.has(p))));
  }

  /**
   * Runs lease work (take, load, hand-over) after the work already queued, one at a
   * time. #busy is the queue's tail and is cleared only by the work that is still the
   * tail when it ends: a tick balances only while nothing is queued, so a tail left set
   * would stop this replica from ever taking a lapsed or handed-back partition again.
   */
  #queue(work: () => Promise<void>): void {
    const previous = this.#busy ?? Promise.resolve();
    const tail: Promise<void> = previous
      .then(work)
      .catch((error: unknown) => this.#logger.warn({ err: error }, "lease work failed"))
      .finally(() => {
        if (this.#busy === tail) this.#busy = undefined;
      });
    this.#busy = tail;
  }

  async #load(partitions: readonly number[]): Promise<void> {
    if (partitions.length === 0 || this.#stopped) return;
    this.#logger.info({ partitions }, "loading partitions");
    let timer: NodeJS.Timeout | undefined;
    try {
      // Bounded: a load stuck on NATS must not hold the leases (and so the partitions)
      // for ever; given back, they are taken again by whoever can load them.
      await Promise.race([
        this.#options.onAcquired(partitions),
        new Promise<never>((_, reject) => {
          timer = setTimeout(
            () => reject(new Error("taking the partitions over did not finish in time")),
            Math.max(LOAD_TIMEOUT_MS, 6 * this.#options.leaseTtlMs),
          );
        }),
      ]);
      clearTimeout(timer);
      const again: number[] = [];
      const served: number[] = [];
      for (const p of partitions) {
        if (!this.#held.has(p)) continue;
        if (this.#lostWhileLoading.delete(p)) again.push(p);
        else {
          this.#serving.add(p);
          served.push(p);
        }
      }
      if (served.length > 0)
        this.#logger.info({ partitions: served.length, list: served }, "partitions taken over");
      if (again.length > 0) {
        // The store stopped writing these during the load: release what the load made
        // of them and load them once more (claim again, then adopt).
        this.#logger.warn({ partitions: again }, "partitions lost while loading; loading them again");
        for (const p of again) this.#options.onLost(p);
        this.#acquire(again);
      }
    } catch (error) {
      this.#logger.warn({ partitions, err: error }, "cannot take partitions over; giving them back");
      clearTimeout(timer);
      for (const p of partitions) {
        this.#lostWhileLoading.delete(p);
        const lease = this.#held.get(p);
        if (lease === undefined) continue;
        this.#held.delete(p);
        this.#options.onLost(p);
        await this.#kv?.delete(leaseKey(p), { previousSeq: lease.revision }).catch(() => undefined);
      }
    }
  }

  #handOver(partition: number): void {
    this.#queue(async () => {
      // New calls for it get UNAVAILABLE from now on; those running finish first.
      this.#serving.delete(partition);
      await this.#options.beforeRelease(partition);
      const lease = this.#held.get(partition);
      this.#held.delete(partition);
      this.#lostWhileLoading.delete(partition);
      this.#options.onLost(partition);
      if (lease !== undefined) {
        await this.#kv?.delete(leaseKey(partition), { previousSeq: lease.revision }).catch(() => undefined);
      }
    });
  }
}

/** Longest a takeover (fence, replay, loading the sessions) may take before it is given up. */
const LOAD_TIMEOUT_MS = 30_000;

function leaseKey(partition: number): string {
  return `lease.${partition}`;
}

function memberKey(replica: string): string {
  return `member.${replica}`;
}

function hashOf(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  return hash >>> 0;
}

/** JetStream's "wrong last sequence" (10071) or "key exists": the CAS lost. */
function isCasFailure(error: unknown): boolean {
  return error instanceof Error && /wrong last sequence|10071|key exists/i.test(error.message);
}
