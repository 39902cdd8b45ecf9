import type { KV } from "@nats-io/kv";
import type { Logger } from "../logger.js";

/** What another replica's lease (or heartbeat) looks like from here. */
export interface Seen {
  readonly holder: string | undefined;
  readonly revision: number;
  /** When this replica saw the revision change (its own clock: no clock is compared across machines). */
  readonly seenAtMs: number;
}

/** The value of a lease or heartbeat key. */
export interface LeaseValue {
  readonly replica: string;
  readonly renewedAtMs: number;
}

/**
 * This replica's view of the lease bucket (partition-leases.ts, DESIGN §7): every key's
 * holder, revision and when its revision last changed as seen here, kept by a watch of the
 * bucket and by what the replica writes itself.
 *
 * Every other replica's lease is seen only through the watch, so a watch that stopped
 * delivering (a NATS node it read from was killed) would leave this replica with a frozen
 * view: it would forward to an owner that is gone and never see a partition handed back.
 * The replica's own heartbeat is the probe: one the watch has not delivered within a TTL
 * means the watch is dead, and it is started again (the restart delivers every key's last
 * value, so the view catches up).
 */
export class LeaseView {
  readonly #kv: KV;
  readonly #leaseTtlMs: number;
  readonly #logger: Logger;
  readonly #seen = new Map<string, Seen>();
  /** The running watch of the bucket, undefined while none runs. */
  #watcher: { stop(): void } | undefined;
  #watchStarting = false;
  #stopped = false;
  /** Highest revision the watch delivered. */
  #watched = 0;
  /** This replica's oldest heartbeat the watch has not delivered yet. */
  #unwatchedBeat: { revision: number; atMs: number } | undefined;

  constructor(kv: KV, leaseTtlMs: number, logger: Logger) {
    this.#kv = kv;
    this.#leaseTtlMs = leaseTtlMs;
    this.#logger = logger;
  }

  get(key: string): Seen | undefined {
    return this.#seen.get(key);
  }

  entries(): IterableIterator<[string, Seen]> {
    return this.#seen.entries();
  }

  /** Records a key's value at `revision` unless a newer one was seen. */
  note(key: string, value: Uint8Array | undefined, revision: number): void {
    const before = this.#seen.get(key);
    if (before !== undefined && before.revision >= revision) return;
    let holder: string | undefined;
    if (value !== undefined && value.length > 0) {
      try {
        holder = (JSON.parse(new TextDecoder().decode(value)) as LeaseValue).replica;
      } catch {
        holder = undefined;
      }
    }
    this.#seen.set(key, { holder, revision, seenAtMs: Date.now() });
  }

  /** This replica wrote its heartbeat at `revision`: the watch must deliver it within a TTL. */
  beat(revision: number): void {
    if (revision > this.#watched && this.#unwatchedBeat === undefined)
      this.#unwatchedBeat = { revision, atMs: Date.now() };
  }

  async watch(): Promise<void> {
    if (this.#stopped || this.#watchStarting) return;
    this.#watchStarting = true;
    let updates: Awaited<ReturnType<KV["watch"]>>;
    try {
      updates = await this.#kv.watch({ key: ">" });
    } finally {
      this.#watchStarting = false;
    }
    const watcher = { stop: () => updates.stop() };
    this.#watcher?.stop();
    this.#watcher = watcher;
    this.#unwatchedBeat = undefined;
    void (async () => {
      for await (const entry of updates) {
        if (entry.revision > this.#watched) this.#watched = entry.revision;
        if (this.#unwatchedBeat !== undefined && this.#watched >= this.#unwatchedBeat.revision)
          this.#unwatchedBeat = undefined;
        this.note(entry.key, entry.operation === "PUT" ? entry.value : undefined, entry.revision);
      }
    })()
      .catch((error: unknown) => this.#logger.warn({ err: error }, "lease watch ended"))
      .finally(() => {
        // The watch ends when NATS drops it: the next check watches again.
        if (this.#watcher === watcher) this.#watcher = undefined;
      });
    if (this.#stopped) updates.stop();
  }

  /** Starts the watch again when it ended or stalled (see the class comment). */
  check(): void {
    if (this.#watchStarting || this.#stopped) return;
    const beat = this.#unwatchedBeat;
    const stalled = beat !== undefined && Date.now() - beat.atMs > this.#leaseTtlMs;
    if (this.#watcher !== undefined && !stalled) return;
    if (stalled) {
      this.#logger.warn(
        { revision: beat?.revision, watched: this.#watched },
        "lease watch stalled; watching again",
      );
      this.#watcher?.stop();
      this.#watcher = undefined;
      // The next heartbeat probes the new watch.
      this.#unwatchedBeat = undefined;
    }
    void this.watch().catch((error: unknown) => this.#logger.warn({ err: error }, "cannot watch the leases"));
  }

  stop(): void {
    this.#stopped = true;
    this.#watcher?.stop();
    this.#watcher = undefined;
  }
}
