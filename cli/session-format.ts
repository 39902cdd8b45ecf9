import { codeName } from "../bridge/errors/code.js";
import type { Timestamp } from "../sdk/gen/google/protobuf/timestamp.js";
import { EnvelopeKind } from "../sdk/gen/sessionbridge/v1/envelope.js";
import {
  EndReason,
  type JournalEntry,
  type Session,
  SessionState,
} from "../sdk/gen/sessionbridge/v1/session.js";

/** Human-readable renderings for `sessionbridge sessions`; --json prints the messages instead. */

export function iso(ts: Timestamp | undefined): string {
  if (ts === undefined) return "-";
  return new Date(ts.seconds * 1000 + Math.floor(ts.nanos / 1e6)).toISOString();
}

export function stateName(state: SessionState): string {
  return SessionState[state]?.replace("SESSION_STATE_", "").toLowerCase() ?? String(state);
}

export function endReasonName(reason: EndReason): string {
  return reason === EndReason.END_REASON_UNSPECIFIED
    ? "-"
    : (EndReason[reason]?.replace("END_REASON_", "").toLowerCase().replaceAll("_", "-") ?? String(reason));
}

function correlationText(session: Session): string {
  const pairs = Object.entries(session.correlation).map(([k, v]) => `${k}=${v}`);
  return pairs.length === 0 ? "-" : pairs.join(",");
}

export function sessionTable(sessions: readonly Session[]): string {
  const rows = sessions.map((s) => [
    s.id,
    s.service,
    stateName(s.state),
    correlationText(s),
    iso(s.createdAt),
    iso(s.lastActiveAt),
  ]);
  return table(["ID", "SERVICE", "STATE", "CORRELATION", "CREATED", "LAST ACTIVE"], rows);
}

export function sessionDetails(s: Session): string {
  const lines: [string, string][] = [
    ["id", s.id],
    ["service", s.service],
    ["state", stateName(s.state)],
    ["end reason", endReasonName(s.endReason)],
    ["correlation set", s.correlationSet || "-"],
    ["correlation", correlationText(s)],
    ["principal", s.principal],
    ["created", iso(s.createdAt)],
    ["last active", iso(s.lastActiveAt)],
    ["ended", iso(s.endedAt)],
    ["next seq", String(s.nextSeq)],
    ["journal entries", String(s.journalLength)],
  ];
  const width = Math.max(...lines.map(([k]) => k.length));
  return lines.map(([k, v]) => `${k.padEnd(width)}  ${v}`).join("\n");
}

export function historyLine(entry: JournalEntry): string {
  const e = entry.envelope;
  if (e === undefined) return `#${entry.index} (empty)`;
  const kind = EnvelopeKind[e.kind]?.replace("ENVELOPE_KIND_", "") ?? String(e.kind);
  const parts = [`#${entry.index}`, iso(e.time), kind.padEnd(8), e.operation || "-", `msg=${e.messageId}`];
  if (e.inReplyTo) parts.push(`reply-to=${e.inReplyTo}`);
  if (e.seq > 0) parts.push(`seq=${e.seq}`);
  if (e.payload.length > 0) parts.push(`${e.payload.length}B`);
  if (e.kind === EnvelopeKind.ENVELOPE_KIND_EVENT) {
    parts.push(
      Object.entries(e.metadata)
        .map(([k, v]) => `${k}=${v}`)
        .join(" "),
    );
  }
  if (e.fault !== undefined)
    parts.push(`fault=${codeName(e.fault.code)} ${e.fault.reason}: ${e.fault.message}`);
  return parts.join(" ");
}

/** A JSON-safe form of a message: bytes as base64. */
export function jsonOf(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    Buffer.isBuffer(v) || v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v,
  );
}

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
  const line = (cells: readonly string[]) =>
    cells
      .map((c, i) => c.padEnd(widths[i] ?? 0))
      .join("  ")
      .trimEnd();
  return [line(header), ...rows.map(line)].join("\n");
}
