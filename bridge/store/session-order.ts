import type { SessionRecord } from "./records.js";

/**
 * Orderings every store must agree on, written once so the memory store sorts exactly as
 * SQLite does: SQLite's BINARY collation compares UTF-8 bytes, which is code point order,
 * not the UTF-16 unit order of JavaScript's `<`.
 */
export function compareText(a: string, b: string): number {
  if (a === b) return 0;
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    const x = a.codePointAt(i) ?? 0;
    const y = b.codePointAt(i) ?? 0;
    if (x !== y) return x < y ? -1 : 1;
    // A surrogate pair is one code point: skip its second half.
    if (x > 0xffff) i++;
  }
  return a.length < b.length ? -1 : a.length > b.length ? 1 : 0;
}

/** listSessions order: newest first, then by id. */
export function compareNewestFirst(a: SessionKey, b: SessionKey): number {
  if (a.createdAtMs !== b.createdAtMs) return a.createdAtMs > b.createdAtMs ? -1 : 1;
  return compareText(a.id, b.id);
}

/** recover() order: oldest first, then by id, so SEQUENTIAL services see starters in arrival order (S6). */
export function compareOldestFirst(a: SessionKey, b: SessionKey): number {
  if (a.createdAtMs !== b.createdAtMs) return a.createdAtMs < b.createdAtMs ? -1 : 1;
  return compareText(a.id, b.id);
}

/** The key sessions are listed and paged by. */
export type SessionKey = Pick<SessionRecord, "createdAtMs" | "id">;
