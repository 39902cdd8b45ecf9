import { newId } from "../call/ids.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";

/**
 * How sessions are spread over replicas (DESIGN §7, partitioned single writer): a fixed
 * number of partitions, each owned by one replica at a time. A session's partition is
 * the hash of its id; a session is born in the partition of what routes its starter, so
 * every later call finds the same owner whether it names the session by id (S1) or by
 * correlation values (S5):
 * - a correlated starter of a CONCURRENT service: the hash of service + correlation key,
 *   so concurrent starters with equal values land on one owner (S5 uniqueness, S3 join);
 * - any session of a SEQUENTIAL or SINGLE service: the hash of the service, since their
 *   sessions run in one line (S6);
 * - an uncorrelated starter of a CONCURRENT service: any partition the receiving replica
 *   owns (nothing else can address it before its id is known).
 * The id is then drawn at random until it hashes into that partition: ids keep their
 * 128+ random bits (S1), and a replica learns a session's partition from its id alone.
 */
export interface Partitioning {
  readonly count: number;
  /** The partition of a session, from its id. */
  ofSession(sessionId: string): number;
  /** The partition of a starter routed by correlation (service + key). */
  ofCorrelation(service: string, correlationKey: string): number;
  /** The partition of every session of a SEQUENTIAL or SINGLE service. */
  ofService(service: string): number;
  /** A fresh session id (S1) whose partition is `partition`. */
  sessionIdIn(partition: number): string;
}

/** Largest partition count: draws per new id grow with it (about `count` on average). */
export const MAX_PARTITIONS = 4096;

export function createPartitioning(count: number): Partitioning {
  if (!Number.isSafeInteger(count) || count < 1 || count > MAX_PARTITIONS) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_CONFIG,
      `cluster.partitions must be an integer from 1 to ${MAX_PARTITIONS}, got ${count}`,
    );
  }
  const of = (text: string): number => fnv1a(text) % count;
  return {
    count,
    ofSession: of,
    ofCorrelation: (service, key) => of(`c\n${service}\n${key}`),
    ofService: (service) => of(`s\n${service}`),
    sessionIdIn(partition) {
      // Rejection sampling keeps the id uniform among ids of the partition; the expected
      // number of draws is `count`, a few microseconds at the default 64.
      for (;;) {
        const id = newId();
        if (of(id) === partition) return id;
      }
    },
  };
}

/** 32-bit FNV-1a over UTF-16 code units: stable across replicas and releases. */
function fnv1a(text: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) {
    hash ^= text.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return hash >>> 0;
}
