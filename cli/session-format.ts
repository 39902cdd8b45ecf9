import type { JsonValue } from "@bufbuild/protobuf";
import { codeName } from "../bridge/errors/code.js";
import type { Timestamp } from "../sdk/gen/google/protobuf/timestamp.js";
import { EnvelopeKind } from "../sdk/gen/sessionbridge/v1/envelope.js";
import {
  EndReason,
  type JournalEntry,
  type Session,
  SessionState,
} from "../sdk/gen/sessionbridge/v1/session.js";
import { kindName, type PayloadDecoder } from "./payload-decoder.js";

/**
 * Renderings for `sessionbridge sessions`: tables and key/value lines for people, one
 * JSON object per line for programs. Everything shown comes from clients of the bridge
 * (correlation values, metadata, fault messages, payloads), so text output escapes
 * control characters: a value must not be able to move the cursor, rewrite the screen or
 * reorder what a terminal shows.
 */

// Controls (C0, DEL, C1), bidirectional overrides and isolates, line and paragraph separators.
// biome-ignore lint/suspicious/noControlCharactersInRegex: these are exactly the characters to escape
const UNSAFE = /[\u0000-\u001f\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\\]/g;

/** `text` with every unsafe character as a visible escape (\x1b, \u202e); `\` doubles. */
export function printable(text: string): string {
  return text.replace(UNSAFE, (c) => {
    if (c === "\\") return "\\\\";
    const n = c.codePointAt(0) ?? 0;
    return n <= 0xff ? `\\x${n.toString(16).padStart(2, "0")}` : `\\u${n.toString(16).padStart(4, "0")}`;
  });
}

// JSON.stringify escapes C0 controls but not DEL, C1 or bidirectional controls.
const UNSAFE_IN_JSON = /[\u007f-\u009f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]/g;

/** One JSON line; characters a terminal would act on are \u escapes (still the same JSON). */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value).replace(
    UNSAFE_IN_JSON,
    (c) => `\\u${(c.codePointAt(0) ?? 0).toString(16).padStart(4, "0")}`,
  );
}

/** RFC 3339 in UTC with the precision the timestamp has (0, 3, 6 or 9 fraction digits), as protobuf JSON. */
export function rfc3339(ts: Timestamp | undefined): string | undefined {
  if (ts === undefined) return undefined;
  const base = new Date(ts.seconds * 1000).toISOString().replace(/\.\d+Z$/, "");
  if (ts.nanos === 0) return `${base}Z`;
  const digits = String(ts.nanos).padStart(9, "0");
  const fraction = digits.endsWith("000000")
    ? digits.slice(0, 3)
    : digits.endsWith("000")
      ? digits.slice(0, 6)
      : digits;
  return `${base}.${fraction}Z`;
}

/** For tables: milliseconds are enough. */
export function iso(ts: Timestamp | undefined): string {
  if (ts === undefined) return "-";
  return new Date(ts.seconds * 1000 + Math.floor(ts.nanos / 1e6)).toISOString();
}

function enumName(names: Record<number, string>, value: number, prefix: string): string {
  return names[value]?.replace(prefix, "") ?? String(value);
}

export function stateName(state: SessionState): string {
  return enumName(SessionState, state, "SESSION_STATE_").toLowerCase();
}

export function endReasonName(reason: EndReason): string {
  return reason === EndReason.END_REASON_UNSPECIFIED
    ? "-"
    : enumName(EndReason, reason, "END_REASON_").toLowerCase().replaceAll("_", "-");
}

function pairs(map: Readonly<Record<string, string>>, separator: string): string {
  const list = Object.entries(map).map(([k, v]) => `${printable(k)}=${printable(v)}`);
  return list.length === 0 ? "-" : list.join(separator);
}

const SESSION_HEADER = ["ID", "SERVICE", "STATE", "CORRELATION", "CREATED", "LAST ACTIVE"] as const;

function sessionRow(s: Session): string[] {
  return [
    printable(s.id),
    printable(s.service),
    stateName(s.state),
    pairs(s.correlation, ","),
    iso(s.createdAt),
    iso(s.lastActiveAt),
  ];
}

/**
 * A sessions table written page by page: one header, columns as wide as the first page
 * needs (later pages are not held back to measure them: memory stays one page).
 */
export interface SessionTableWriter {
  page(sessions: readonly Session[]): void;
}

export function createSessionTableWriter(out: NodeJS.WritableStream): SessionTableWriter {
  let widths: number[] | undefined;
  return {
    page(sessions) {
      const rows = sessions.map(sessionRow);
      if (widths === undefined) {
        widths = SESSION_HEADER.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length)));
        out.write(`${line(SESSION_HEADER, widths)}\n`);
      }
      for (const row of rows) out.write(`${line(row, widths)}\n`);
    },
  };
}

function line(cells: readonly string[], widths: readonly number[]): string {
  return cells
    .map((c, i) => c.padEnd(widths[i] ?? 0))
    .join("  ")
    .trimEnd();
}

export function sessionDetails(s: Session): string {
  const lines: [string, string][] = [
    ["id", printable(s.id)],
    ["service", printable(s.service)],
    ["state", stateName(s.state)],
    ["end reason", endReasonName(s.endReason)],
    ["correlation set", printable(s.correlationSet) || "-"],
    ["correlation", pairs(s.correlation, ",")],
    ["principal", printable(s.principal)],
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
  const parts = [
    `#${entry.index}`,
    iso(e.time),
    kindName(e.kind).padEnd(8),
    printable(e.operation) || "-",
    `msg=${printable(e.messageId)}`,
  ];
  if (e.inReplyTo) parts.push(`reply-to=${printable(e.inReplyTo)}`);
  if (e.seq > 0) parts.push(`seq=${e.seq}`);
  if (e.payload.length > 0) parts.push(`${e.payload.length}B`);
  if (e.kind === EnvelopeKind.ENVELOPE_KIND_EVENT) parts.push(pairs(e.metadata, " "));
  if (e.fault !== undefined)
    parts.push(`fault=${codeName(e.fault.code)} ${printable(e.fault.reason)}: ${printable(e.fault.message)}`);
  return parts.join(" ");
}

/** A session as --json prints it: enum names, RFC 3339 times. */
export function sessionJson(s: Session): Record<string, JsonValue> {
  return omitUndefined({
    id: s.id,
    service: s.service,
    state: enumName(SessionState, s.state, "SESSION_STATE_"),
    endReason:
      s.endReason === EndReason.END_REASON_UNSPECIFIED
        ? undefined
        : enumName(EndReason, s.endReason, "END_REASON_"),
    correlationSet: s.correlationSet,
    correlation: s.correlation,
    principal: s.principal,
    createdAt: rfc3339(s.createdAt),
    lastActiveAt: rfc3339(s.lastActiveAt),
    endedAt: rfc3339(s.endedAt),
    nextSeq: s.nextSeq,
    journalLength: s.journalLength,
  });
}

/**
 * A journal entry as --json prints it: the envelope's fields with enum names and RFC 3339
 * times, empty ones left out, and the payload decoded through the contract's descriptors
 * (or base64 with the reason it could not be).
 */
export async function entryJson(
  entry: JournalEntry,
  decoder: PayloadDecoder,
): Promise<Record<string, JsonValue>> {
  const e = entry.envelope;
  if (e === undefined) return { index: entry.index };
  // A message of the operation's own type is shown even when empty (all fields default).
  const typed =
    e.kind === EnvelopeKind.ENVELOPE_KIND_REQUEST ||
    e.kind === EnvelopeKind.ENVELOPE_KIND_ONE_WAY ||
    e.kind === EnvelopeKind.ENVELOPE_KIND_RESPONSE;
  const payload =
    e.payload.length === 0 && !typed ? {} : await decoder.decode(e.operation, e.kind, e.payload, e.codec);
  const fault =
    e.fault === undefined
      ? undefined
      : omitUndefined({
          code: codeName(e.fault.code),
          reason: e.fault.reason || undefined,
          message: e.fault.message || undefined,
          metadata: nonEmpty(e.fault.metadata),
          details:
            e.fault.details.length === 0
              ? undefined
              : e.fault.details.map((d) => ({
                  typeUrl: d.typeUrl,
                  valueBase64: Buffer.from(d.value).toString("base64"),
                })),
        });
  return {
    index: entry.index,
    envelope: omitUndefined({
      messageId: e.messageId,
      sessionId: e.sessionId || undefined,
      kind: kindName(e.kind),
      operation: e.operation || undefined,
      seq: e.seq > 0 ? e.seq : undefined,
      inReplyTo: e.inReplyTo || undefined,
      time: rfc3339(e.time),
      deadline: rfc3339(e.deadline),
      correlation: nonEmpty(e.correlation),
      metadata: nonEmpty(e.metadata),
      principal: e.principal || undefined,
      traceparent: e.traceparent || undefined,
      tracestate: e.tracestate || undefined,
      idempotencyKey: e.idempotencyKey || undefined,
      codec: e.payload.length > 0 && e.codec !== "" ? e.codec : undefined,
      ...payload,
      fault,
    }),
  };
}

function nonEmpty(map: Readonly<Record<string, string>>): Record<string, string> | undefined {
  return Object.keys(map).length === 0 ? undefined : { ...map };
}

function omitUndefined(fields: Record<string, JsonValue | undefined>): Record<string, JsonValue> {
  const out: Record<string, JsonValue> = {};
  for (const [k, v] of Object.entries(fields)) if (v !== undefined) out[k] = v;
  return out;
}
