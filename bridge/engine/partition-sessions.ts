import type { ServiceContract } from "../contracts/contract.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { EngineContext } from "./engine-context.js";
import { recoverSessions } from "./recovery.js";

/**
 * Where new sessions are born and which stored sessions an engine holds, for an engine
 * that is one of several replicas on a shared store (DESIGN §7: partitioned single
 * writer). Without it the engine holds every live session of the store.
 */
export interface SessionPlacement {
  /** The id of a new session (S1): at least 128 random bits, in the starter's partition. */
  newSessionId(service: ServiceContract, correlationKey: string | undefined): string;
}

/** Which sessions a call to adopt or release concerns, by session id. */
export type SessionFilter = (sessionId: string) => boolean;

/**
 * Loads the live sessions `owns` selects and queues again what they had accepted and not
 * answered (S10), as start() does for a whole store: the engine takes over a partition
 * with the state its previous owner left. Sessions it already holds are kept.
 */
export async function adoptSessions(
  ctx: EngineContext,
  owns: SessionFilter,
): Promise<{ restored: number; requeued: number }> {
  const recovered = await ctx.store.recover();
  const sessions = recovered.sessions.filter((s) => owns(s.id) && ctx.registry.get(s.id) === undefined);
  const fresh = new Set(sessions.map((s) => s.id));
  const outbox = recovered.outbox.filter((o) => fresh.has(o.sessionId));
  return recoverSessions(ctx, sessions, outbox);
}

/**
 * Drops the sessions `owns` selects without ending them: another replica owns them now.
 * Calls still waiting for their turn get UNAVAILABLE, which a client retries (with its
 * sb-seq or Idempotency-Key, S7/S8) against the new owner. The store refuses any later
 * commit of a released partition, so nothing this engine still runs can write there.
 */
export function releaseSessions(ctx: EngineContext, owns: SessionFilter): number {
  const released = [...ctx.registry.all()].filter((s) => owns(s.id));
  for (const session of released) {
    ctx.registry.remove(session);
    session.turns.rejectWaiting(
      () =>
        new BridgeError(
          Code.UNAVAILABLE,
          Reason.PARTITION_MOVING,
          `session ${session.id} moved to another replica; retry`,
          { metadata: { session_id: session.id } },
        ),
    );
  }
  return released.length;
}
