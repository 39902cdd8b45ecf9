import { randomFillSync } from "node:crypto";

/**
 * Random bytes drawn from the system generator in blocks: one syscall serves hundreds of
 * ids instead of one each (it showed up at 5% of a bridged call's CPU).
 */
const POOL_BYTES = 4096;
const pool = Buffer.allocUnsafe(POOL_BYTES);
let offset = POOL_BYTES;

/** `n` fresh random bytes (n ≤ 4096); the view is valid until the next call. */
export function randomView(n: number): Buffer {
  if (offset + n > POOL_BYTES) {
    randomFillSync(pool);
    offset = 0;
  }
  const view = pool.subarray(offset, offset + n);
  offset += n;
  return view;
}

/** Characters an id may start with: base64url without `-` and `_`. */
const LEAD = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/**
 * Session and message ids: 22 base64url characters, URL-safe so they travel in headers,
 * paths and NATS subjects unchanged (S1). They never start with `-`, which a command line
 * would read as an option (DESIGN §7): the first character is drawn from the 62
 * alphanumerics (rejection sampling keeps it uniform) and the other 21 carry 126 bits, so
 * an id holds about 131.95 random bits, above the 128 that S1 asks for.
 */
export function newId(): string {
  const view = randomView(17);
  // The tail is encoded before any further draw: the view is only valid until then.
  const tail = view.toString("base64url", 1).slice(0, 21);
  let lead = (view[0] ?? 0) & 63;
  while (lead >= LEAD.length) lead = (randomView(1)[0] ?? 0) & 63;
  return `${LEAD[lead]}${tail}`;
}
