/**
 * The journal_exchange index holds a 47-bit hash of an exchange's message id (the request's
 * own id, or the id an outcome answers) instead of the id's text: every entry adds one
 * leaf entry to that index, and with 20-odd-byte entries instead of 70-odd a leaf holds
 * three times as many, so far fewer commits split a leaf and rewrite its neighbours and
 * parent (S9 makes every call two commits). Lookups compare the text as well, so two ids
 * with the same hash cost one more row read, never a wrong answer (S7, S8, S10).
 *
 * 47 bits is the most a 6-byte SQLite integer holds; the value is a safe JS integer.
 */
export function exchangeKey(messageId: string): number {
  // Two 32-bit multiplicative hashes over the UTF-16 code units, each finished with an
  // avalanche so that ids differing in their last character spread over the whole range.
  let a = 0x811c9dc5;
  let b = 0x6a09e667;
  for (let i = 0; i < messageId.length; i++) {
    const c = messageId.charCodeAt(i);
    a = Math.imul(a ^ c, 0x01000193);
    b = Math.imul(b ^ c, 0x5bd1e995);
  }
  a ^= a >>> 15;
  a = Math.imul(a, 0x2c1b3c6d);
  a ^= a >>> 12;
  b ^= b >>> 16;
  b = Math.imul(b, 0x297a2d39);
  b ^= b >>> 13;
  b ^= a;
  return (b & 0x7fff) * 0x1_0000_0000 + (a >>> 0);
}

/** The id a journal entry is found under in journal_exchange: what it answers, else its own. */
export function exchangeIdOf(messageId: string, inReplyTo: string): string {
  return inReplyTo !== "" ? inReplyTo : messageId;
}

/** The name the writer's connection knows exchangeKey() by, for migration 4. */
export const EXCHANGE_KEY_FUNCTION = "sb_exchange_key";
