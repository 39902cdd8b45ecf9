/**
 * Status codes in the numbering of google.rpc.Code (rule S14). Every fault the bridge
 * produces or relays carries one of these; adapters map them to their transport.
 */
export enum Code {
  OK = 0,
  CANCELLED = 1,
  UNKNOWN = 2,
  INVALID_ARGUMENT = 3,
  DEADLINE_EXCEEDED = 4,
  NOT_FOUND = 5,
  ALREADY_EXISTS = 6,
  PERMISSION_DENIED = 7,
  RESOURCE_EXHAUSTED = 8,
  FAILED_PRECONDITION = 9,
  ABORTED = 10,
  OUT_OF_RANGE = 11,
  UNIMPLEMENTED = 12,
  INTERNAL = 13,
  UNAVAILABLE = 14,
  DATA_LOSS = 15,
  UNAUTHENTICATED = 16,
}

/** True for a number that is one of the seventeen codes. */
export function isCode(value: number): value is Code {
  return Number.isInteger(value) && value >= Code.OK && value <= Code.UNAUTHENTICATED;
}

/** The code for a number from the wire; anything unknown becomes UNKNOWN. */
export function codeFromNumber(value: number): Code {
  return isCode(value) ? value : Code.UNKNOWN;
}

/** "NOT_FOUND" for Code.NOT_FOUND. */
export function codeName(code: Code): string {
  return Code[code] ?? "UNKNOWN";
}

/** Lower snake case, as the Connect protocol spells codes ("not_found"). */
export function codeToSnake(code: Code): string {
  return codeName(code).toLowerCase();
}

/** Parses "NOT_FOUND", "not_found" or "5"; undefined when it is none of them. */
export function parseCode(text: string): Code | undefined {
  const trimmed = text.trim();
  if (/^\d+$/.test(trimmed)) {
    const n = Number(trimmed);
    return isCode(n) ? n : undefined;
  }
  const value = (Code as unknown as Record<string, unknown>)[trimmed.toUpperCase()];
  return typeof value === "number" && isCode(value) ? value : undefined;
}
