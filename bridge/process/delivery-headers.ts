import { Header } from "../call/metadata.js";
import type { Delivery } from "./process-client.js";

/**
 * The sb-* facts a process receives with each message (DESIGN §1), the same on every
 * transport. The bridge writes them itself: client-sent sb-* never gets here (S13).
 */
export function deliveryHeaders(delivery: Delivery): Record<string, string> {
  const headers: Record<string, string> = {
    [Header.messageId]: delivery.messageId,
    [Header.principal]: delivery.principal,
  };
  if (delivery.sessionId !== undefined) headers[Header.sessionId] = delivery.sessionId;
  if (delivery.seq > 0) headers[Header.seq] = String(delivery.seq);
  if (delivery.traceparent !== undefined) headers[Header.traceparent] = delivery.traceparent;
  if (delivery.tracestate !== undefined) headers[Header.tracestate] = delivery.tracestate;
  return headers;
}
