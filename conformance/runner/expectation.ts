import type { HeaderExpectation } from "./case-schema.js";

/**
 * Subset matching of an expected value (from a case) against an actual one (a reply in
 * proto3 JSON): objects match key by key, arrays element by element and in length,
 * `{$op: …}` objects are matchers. Returns a description of the first mismatch, or
 * undefined when it matches.
 */
export function mismatch(expected: unknown, actual: unknown, where = "reply"): string | undefined {
  if (isMatcher(expected)) return matcherMismatch(expected, actual, where);
  if (Array.isArray(expected)) {
    const list = actual === undefined || actual === null ? [] : actual;
    if (!Array.isArray(list)) return `${where}: expected a list, got ${show(actual)}`;
    if (list.length !== expected.length) {
      return `${where}: expected ${expected.length} entries ${show(expected)}, got ${list.length} ${show(list)}`;
    }
    for (let i = 0; i < expected.length; i++) {
      const m = mismatch(expected[i], list[i], `${where}[${i}]`);
      if (m !== undefined) return m;
    }
    return undefined;
  }
  if (typeof expected === "object" && expected !== null) {
    const object = actual === undefined || actual === null ? {} : actual;
    if (typeof object !== "object" || Array.isArray(object))
      return `${where}: expected an object, got ${show(actual)}`;
    for (const [key, value] of Object.entries(expected)) {
      const m = mismatch(value, (object as Record<string, unknown>)[key], `${where}.${key}`);
      if (m !== undefined) return m;
    }
    return undefined;
  }
  if (sameScalar(expected, actual)) return undefined;
  return `${where}: expected ${show(expected)}, got ${show(actual)}`;
}

/** proto3 JSON omits defaults, and writes 64-bit integers as strings. */
function sameScalar(expected: unknown, actual: unknown): boolean {
  if (actual === undefined || actual === null) {
    return expected === false || expected === 0 || expected === "" || expected === null;
  }
  if (typeof expected === "number" && typeof actual === "string") return Number(actual) === expected;
  return expected === actual;
}

function isMatcher(value: unknown): value is Record<string, unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    Object.keys(value).length > 0 &&
    Object.keys(value).every((k) => k.startsWith("$"))
  );
}

function matcherMismatch(
  matcher: Record<string, unknown>,
  actual: unknown,
  where: string,
): string | undefined {
  const n = actual === undefined || actual === null ? 0 : Number(actual);
  for (const [op, arg] of Object.entries(matcher)) {
    const fail = (what: string) => `${where}: expected ${what}, got ${show(actual)}`;
    switch (op) {
      case "$gte":
        if (!(n >= Number(arg))) return fail(`≥ ${String(arg)}`);
        break;
      case "$gt":
        if (!(n > Number(arg))) return fail(`> ${String(arg)}`);
        break;
      case "$lte":
        if (!(n <= Number(arg))) return fail(`≤ ${String(arg)}`);
        break;
      case "$ne":
        if (actual === arg || (actual === undefined && (arg === "" || arg === 0)))
          return fail(`not ${show(arg)}`);
        break;
      case "$present":
        if ((actual === undefined || actual === null || actual === "") === (arg === true)) {
          return fail(arg === true ? "a value" : "no value");
        }
        break;
      case "$contains":
        if (Array.isArray(actual) ? !actual.includes(arg) : !String(actual ?? "").includes(String(arg))) {
          return fail(`something containing ${show(arg)}`);
        }
        break;
      case "$len": {
        const length = Array.isArray(actual) ? actual.length : typeof actual === "string" ? actual.length : 0;
        if (length !== Number(arg)) return fail(`length ${String(arg)} (got ${length})`);
        break;
      }
      case "$bytes": {
        // Payloads compared by size and content without printing megabytes.
        const expected = Buffer.alloc(Number(arg), 0x78).toString("base64");
        if ((actual ?? "") !== (Number(arg) === 0 ? "" : expected)) {
          return `${where}: expected ${String(arg)} bytes of 'x', got ${String(actual ?? "").length} base64 characters`;
        }
        break;
      }
      default:
        return `${where}: unknown matcher ${op}`;
    }
  }
  return undefined;
}

function show(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 200 ? `${text.slice(0, 200)}…` : text;
}

/** Replaces `{$bytes: N}` in a request with N bytes of 'x' in base64 (large payload cases). */
export function expandRequest(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(expandRequest);
  if (typeof value === "object" && value !== null) {
    const entries = Object.entries(value);
    if (entries.length === 1 && entries[0]?.[0] === "$bytes") {
      const n = Number(entries[0][1]);
      if (!Number.isSafeInteger(n) || n < 0 || n > 64 * 1024 * 1024)
        throw new Error(`$bytes: ${String(n)} is out of range`);
      return Buffer.alloc(n, 0x78).toString("base64");
    }
    return Object.fromEntries(entries.map(([k, v]) => [k, expandRequest(v)]));
  }
  return value;
}

/**
 * A header or trailer against its expectation: the value byte for byte, or `{$present}`
 * (a sessionless answer carries no `sb-session-id`, for example). Returns what was
 * expected and what came, or undefined when it matches.
 */
export function headerMismatch(expected: HeaderExpectation, got: string | undefined): string | undefined {
  if (typeof expected === "string") return got === expected ? undefined : `${expected}, got ${got ?? "none"}`;
  if ((got !== undefined) === expected.$present) return undefined;
  return expected.$present ? "a value, got none" : `none, got ${JSON.stringify(got)}`;
}
