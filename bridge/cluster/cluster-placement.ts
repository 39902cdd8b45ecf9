import type { SessionPlacement } from "../engine/partition-sessions.js";
import { partitionMoving } from "./cluster-bridge.js";
import type { Partitioning } from "./partitions.js";

/**
 * Where a replica's new sessions are born (see partitions.ts): in the partition their
 * starter was routed by, so the owner that started a session is the one every later
 * call reaches. An uncorrelated starter of a CONCURRENT service takes a random partition
 * this replica serves.
 */
export function createClusterPlacement(
  partitioning: Partitioning,
  served: () => readonly number[],
): SessionPlacement {
  return {
    newSessionId(service, correlationKey) {
      if (service.execution !== "concurrent") {
        return partitioning.sessionIdIn(partitioning.ofService(service.name));
      }
      if (correlationKey !== undefined) {
        return partitioning.sessionIdIn(partitioning.ofCorrelation(service.name, correlationKey));
      }
      const mine = served();
      const pick = mine[Math.floor(Math.random() * mine.length)];
      if (pick === undefined) throw partitionMoving(-1, "this replica serves no partition yet");
      return partitioning.sessionIdIn(pick);
    },
  };
}
