import { randomBytes } from "node:crypto";

/**
 * Session and message ids: 128 random bits, base64url without padding (22 characters),
 * URL-safe so they travel in headers, paths and NATS subjects unchanged (S1).
 */
export function newId(): string {
  return randomBytes(16).toString("base64url");
}
