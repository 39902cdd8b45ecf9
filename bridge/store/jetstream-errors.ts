import { JetStreamApiError } from "@nats-io/jetstream";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import { asStoreError } from "./store-errors.js";

/**
 * What NATS answers while it cannot serve for a moment: a timeout while a node is down
 * or a leader is elected, a dropped connection, a read that stalled, and JetStream's own
 * "temporarily unavailable" (10008) and "no leader" answers while a cluster node restarts.
 */
const TRANSIENT =
  /timeout|timed out|stalled|ended early|disconnect|connection closed|no responders|no leader|not ready|temporarily unavailable/i;

/** JetStream API error codes of a cluster that is electing or catching up (10008: JSClusterNotAvailErr). */
const TRANSIENT_API_CODES = new Set([10008]);

/**
 * A failure of NATS itself is UNAVAILABLE, which clients retry (the store wrote nothing
 * it acknowledged, S9); anything else is the store's INTERNAL failure.
 */
export function natsStoreError(error: unknown, doing: string): BridgeError {
  if (error instanceof BridgeError) return error;
  const text = error instanceof Error ? error.message : String(error);
  if (TRANSIENT.test(text) || (error instanceof JetStreamApiError && TRANSIENT_API_CODES.has(error.code))) {
    return new BridgeError(
      Code.UNAVAILABLE,
      Reason.STORE_FAILURE,
      `${doing}: NATS did not answer (${text}); retry`,
      {
        cause: error,
      },
    );
  }
  return asStoreError(error, doing);
}

/** UNAVAILABLE: the partition is not this store's to write now; the caller retries (DESIGN §7). */
export function partitionMoving(partition: number, why: string): BridgeError {
  return new BridgeError(Code.UNAVAILABLE, Reason.PARTITION_MOVING, `partition ${partition}: ${why}; retry`, {
    metadata: { partition: String(partition) },
  });
}

/** JetStream's "wrong last sequence" (10071) or a KV create on a key that exists: the CAS lost to another writer. */
export function isCasFailure(error: unknown): boolean {
  return error instanceof Error && /wrong last sequence|10071|key exists/i.test(error.message);
}

/** The server's answer to deleting a message no longer there (10057, "no message found"). */
export function isAlreadyDeleted(error: unknown): boolean {
  return (
    error instanceof JetStreamApiError && error.code === 10057 && /no message found/i.test(error.message)
  );
}
