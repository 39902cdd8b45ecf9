import type { KV, KvEntry } from "@nats-io/kv";
import { decodeJson, encodeJson, token } from "./jetstream-codec.js";
import { isCasFailure } from "./jetstream-errors.js";
import type { SessionRecord } from "./records.js";
import { correlationTaken } from "./store-errors.js";

/**
 * S5 across bridges on one JetStream prefix: the bucket `<prefix>_correlation` maps
 * service + correlation key to the session holding it. A claim is taken with a KV create
 * (compare-and-set on absent) or a CAS update on the revision read, so two bridges cannot
 * both bind one key. A claim whose holder is not live with that key (ended, or its batch
 * never committed) is stale and may be taken over by CAS; a claim younger than
 * IN_FLIGHT_CLAIM_MS whose holder has no record yet counts as held, since its batch may be
 * between its checks and applying it (steps 1 and 3 of "Atomicity of a StoreBatch" in
 * jetstream-store.ts).
 */
export interface CorrelationClaims {
  /**
   * The claims a batch's records make, checked one record at a time as the memory and
   * SQLite stores check them; nothing written. Rejects with ALREADY_EXISTS (S5).
   */
  planClaims(records: readonly SessionRecord[]): Promise<ClaimPlan>;
  /** Takes the planned claims with CAS; on any failure releases those taken and rejects. */
  takeClaims(
    claims: Map<string, string | undefined>,
    states: Map<string, ClaimState>,
    records: readonly SessionRecord[],
  ): Promise<Map<string, number>>;
  /** Releases claims taken (key → revision), best effort. */
  releaseClaims(claims: Map<string, number>): Promise<void>;
  /** Keys a batch freed: released when still held as read (CAS), best effort. */
  releaseFreed(
    claims: Map<string, string | undefined>,
    states: Map<string, ClaimState>,
    taken: Map<string, number>,
  ): Promise<void>;
  /** The live session holding the key of `service` + `correlationKey`, if any. */
  holderOf(service: string, correlationKey: string): Promise<SessionRecord | undefined>;
}

/** Key → holder after the batch (undefined: released), and the state read for each key. */
export interface ClaimPlan {
  readonly claims: Map<string, string | undefined>;
  readonly states: Map<string, ClaimState>;
}

/** What the store knows about one correlation key before a batch. */
export interface ClaimState {
  readonly entry: KvEntry | undefined;
  /** The live holder, undefined when free or stale. */
  readonly holder: string | undefined;
}

interface Claim {
  readonly sessionId: string;
  readonly claimedAtMs: number;
}

/** How long a claim whose holder has no session record yet counts as held. */
const IN_FLIGHT_CLAIM_MS = 30_000;

/** The value of a key, undefined when absent, deleted or purged. */
export async function readValue(kv: KV, key: string): Promise<KvEntry | undefined> {
  const entry = await kv.get(key);
  return entry === null || entry.operation !== "PUT" ? undefined : entry;
}

/** The S5 claim key of a session while it is live; undefined when it holds none. */
export function claimKeyOf(record: SessionRecord | undefined): string | undefined {
  if (record === undefined || record.state !== "active" || record.correlationKey === undefined)
    return undefined;
  return `${token(record.service)}.${token(record.correlationKey)}`;
}

export function createCorrelationClaims(
  correlation: KV,
  readSession: (id: string) => Promise<SessionRecord | undefined>,
): CorrelationClaims {
  const claimState = async (key: string, now: number): Promise<ClaimState> => {
    const entry = await readValue(correlation, key);
    if (entry === undefined) return { entry: undefined, holder: undefined };
    const claim = decodeJson(entry.value) as unknown as Claim;
    const record = await readSession(claim.sessionId);
    if (record === undefined) {
      return { entry, holder: now - claim.claimedAtMs < IN_FLIGHT_CLAIM_MS ? claim.sessionId : undefined };
    }
    return { entry, holder: claimKeyOf(record) === key ? claim.sessionId : undefined };
  };

  /**
   * S5 before anything is written: the claims the batch's records make, one record at a
   * time as the memory and SQLite stores check them. Returns key → holder after the batch
   * (undefined: released) and the state read for each key.
   */
  const planClaims = async (
    records: readonly SessionRecord[],
  ): Promise<{ claims: Map<string, string | undefined>; states: Map<string, ClaimState> }> => {
    const now = Date.now();
    const current = new Map<string, SessionRecord | undefined>();
    for (const record of records) {
      if (!current.has(record.id)) current.set(record.id, await readSession(record.id));
    }
    const states = new Map<string, ClaimState>();
    for (const record of [...records, ...current.values()]) {
      const key = claimKeyOf(record);
      if (key !== undefined && !states.has(key)) states.set(key, await claimState(key, now));
    }
    const claims = new Map<string, string | undefined>();
    const staged = new Map<string, SessionRecord | undefined>(current);
    const holder = (key: string): string | undefined =>
      claims.has(key) ? claims.get(key) : states.get(key)?.holder;
    for (const next of records) {
      const prevKey = claimKeyOf(staged.get(next.id));
      staged.set(next.id, next);
      if (prevKey !== undefined && holder(prevKey) === next.id) claims.set(prevKey, undefined);
      const nextKey = claimKeyOf(next);
      if (nextKey === undefined) continue;
      const taken = holder(nextKey);
      if (taken !== undefined && taken !== next.id) throw correlationTaken(next.service, next.id);
      claims.set(nextKey, next.id);
    }
    return { claims, states };
  };

  /** Takes the planned claims with CAS; on any failure releases those taken and rejects. */
  const takeClaims = async (
    claims: Map<string, string | undefined>,
    states: Map<string, ClaimState>,
    records: readonly SessionRecord[],
  ): Promise<Map<string, number>> => {
    const taken = new Map<string, number>();
    try {
      for (const [key, sessionId] of claims) {
        if (sessionId === undefined) continue;
        const state = states.get(key);
        if (state?.holder === sessionId) continue;
        const value = encodeJson({ sessionId, claimedAtMs: Date.now() } satisfies Claim);
        try {
          const revision =
            state?.entry === undefined
              ? await correlation.create(key, value)
              : await correlation.update(key, value, state.entry.revision);
          taken.set(key, revision);
        } catch (error) {
          if (!isCasFailure(error)) throw error;
          // Another bridge bound the key between the read and the write.
          const record = records.find((r) => r.id === sessionId);
          throw correlationTaken(record?.service ?? "", sessionId);
        }
      }
      return taken;
    } catch (error) {
      await releaseClaims(taken);
      throw error;
    }
  };

  const releaseClaims = async (claims: Map<string, number>): Promise<void> => {
    for (const [key, revision] of claims) {
      // Best effort: a claim left behind is stale and taken over by the next session.
      await correlation.delete(key, { previousSeq: revision }).catch(() => undefined);
    }
  };

  /** Keys a batch freed: released when still held as read (CAS), best effort. */
  const releaseFreed = async (
    claims: Map<string, string | undefined>,
    states: Map<string, ClaimState>,
    taken: Map<string, number>,
  ): Promise<void> => {
    const freed = new Map<string, number>();
    for (const [key, sessionId] of claims) {
      const entry = states.get(key)?.entry;
      if (sessionId === undefined && entry !== undefined && !taken.has(key)) freed.set(key, entry.revision);
    }
    await releaseClaims(freed);
  };

  return {
    planClaims,
    takeClaims,
    releaseClaims,
    releaseFreed,
    async holderOf(service, correlationKey) {
      // The claim names the holder; it counts only while that session is live with the key.
      const key = `${token(service)}.${token(correlationKey)}`;
      const entry = await readValue(correlation, key);
      if (entry === undefined) return undefined;
      const claim = decodeJson(entry.value) as unknown as Claim;
      const record = await readSession(claim.sessionId);
      return claimKeyOf(record) === key ? record : undefined;
    },
  };
}
