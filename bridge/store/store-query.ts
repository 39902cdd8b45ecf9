import type { SessionKey } from "./session-order.js";
import { invalidQuery } from "./store-errors.js";

/**
 * Argument checks and page tokens shared by every store, so each store accepts and
 * rejects exactly the same queries and their tokens are interchangeable.
 */

/** Rejects a page size that is not a positive integer. */
export function checkPageSize(pageSize: number): void {
  if (!Number.isSafeInteger(pageSize) || pageSize < 1) {
    throw invalidQuery(`pageSize must be a positive integer, got ${pageSize}`);
  }
}

/** Rejects a journal range SQLite would read differently (LIMIT -1 means "no limit" there). */
export function checkJournalRange(fromIndex: number, limit: number): void {
  if (!Number.isSafeInteger(fromIndex)) throw invalidQuery(`fromIndex must be an integer, got ${fromIndex}`);
  if (!Number.isSafeInteger(limit) || limit < 0) {
    throw invalidQuery(`limit must be a non-negative integer, got ${limit}`);
  }
}

/** The opaque token for the page after `last`: base64url of its key. */
export function encodePageToken(last: SessionKey): string {
  return Buffer.from(JSON.stringify([last.createdAtMs, last.id]), "utf8").toString("base64url");
}

/**
 * The key a token continues after; undefined for the first page ("" counts as absent, as
 * proto3 sends it). Anything a store did not issue is INVALID_ARGUMENT.
 */
export function decodePageToken(token: string | undefined): SessionKey | undefined {
  if (token === undefined || token === "") return undefined;
  if (!/^[A-Za-z0-9_-]+$/.test(token)) throw badToken();
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(token, "base64url").toString("utf8"));
  } catch {
    throw badToken();
  }
  if (!Array.isArray(parsed) || parsed.length !== 2) throw badToken();
  const [createdAtMs, id] = parsed as unknown[];
  if (typeof createdAtMs !== "number" || !Number.isFinite(createdAtMs) || typeof id !== "string") {
    throw badToken();
  }
  return { createdAtMs, id };
}

function badToken(): Error {
  return invalidQuery("pageToken is not a token returned by listSessions");
}
