import type { AliasStep } from "./contract.js";

/**
 * A minimal protobuf wire-format scanner for correlation (S4, S5): it walks only the
 * fields on an alias path and skips everything else without decoding it, so routing a
 * message costs one pass over its top-level fields and no object allocation.
 *
 * Protobuf semantics it honours: a singular scalar that occurs several times takes its
 * last occurrence; an embedded message that occurs several times is the merge of all
 * occurrences, so every occurrence is searched in order and the last leaf found wins.
 */

/** Thrown for bytes that are not valid wire format; the caller adds operation and path. */
export class WireFormatError extends Error {
  override readonly name = "WireFormatError";
  /** How many steps of the alias path had been entered when it failed. */
  readonly depth: number;
  constructor(message: string, depth: number) {
    super(message);
    this.depth = depth;
  }
}

/** Where the last occurrence of the leaf lies; reused across calls to avoid allocation. */
export interface LeafLocation {
  found: boolean;
  /** The value's bytes: the varint, the 4 or 8 fixed bytes, or a string's content. */
  start: number;
  end: number;
}

/** Low and high 32 bits of the varint read last, unsigned. Module state, not allocation. */
export let varintLow = 0;
export let varintHigh = 0;

const MAX_GROUP_NESTING = 64;

/** Finds the last occurrence of the leaf of `steps` in `buf` and records it in `out`. */
export function findLeaf(buf: Uint8Array, steps: readonly AliasStep[], out: LeafLocation): void {
  out.found = false;
  scanMessage(buf, 0, buf.length, steps, 0, out);
}

function scanMessage(
  buf: Uint8Array,
  start: number,
  end: number,
  steps: readonly AliasStep[],
  depth: number,
  out: LeafLocation,
): void {
  const step = steps[depth] as AliasStep;
  const leaf = depth === steps.length - 1;
  let pos = start;
  while (pos < end) {
    pos = readVarint(buf, pos, end, depth);
    const field = varintLow >>> 3;
    const wireType = varintLow & 7;
    if (field === 0) throw new WireFormatError(`invalid field number 0 at byte ${pos}`, depth);
    if (field !== step.number) {
      pos = skipField(buf, pos, end, field, wireType, depth, 0);
      continue;
    }
    if (wireType !== step.wireType) {
      throw new WireFormatError(
        `field ${step.name} (number ${field}) has wire type ${wireType}, expected ${step.wireType}`,
        depth,
      );
    }
    const valueStart = wireType === 2 ? readLength(buf, pos, end, depth) : pos;
    const valueEnd =
      wireType === 2 ? valueStart + varintLow : skipField(buf, pos, end, field, wireType, depth, 0);
    if (leaf) {
      out.found = true;
      out.start = valueStart;
      out.end = valueEnd;
    } else {
      scanMessage(buf, valueStart, valueEnd, steps, depth + 1, out);
    }
    pos = valueEnd;
  }
}

/** Skips one field's value; returns the position after it. */
function skipField(
  buf: Uint8Array,
  pos: number,
  end: number,
  field: number,
  wireType: number,
  depth: number,
  nesting: number,
): number {
  switch (wireType) {
    case 0:
      for (let i = 0; i < 10; i++) {
        if (pos >= end) throw truncated(depth);
        if ((buf[pos++] as number) < 0x80) return pos;
      }
      throw new WireFormatError("varint longer than 10 bytes", depth);
    case 1:
      if (end - pos < 8) throw truncated(depth);
      return pos + 8;
    case 2: {
      const content = readLength(buf, pos, end, depth);
      return content + varintLow;
    }
    case 3:
      return skipGroup(buf, pos, end, field, depth, nesting + 1);
    case 5:
      if (end - pos < 4) throw truncated(depth);
      return pos + 4;
    default:
      // 4 (end group) without a start, or the undefined wire types 6 and 7.
      throw new WireFormatError(`field ${field} has invalid wire type ${wireType} here`, depth);
  }
}

/** Skips a (deprecated) group up to its matching end-group tag. */
function skipGroup(
  buf: Uint8Array,
  pos: number,
  end: number,
  field: number,
  depth: number,
  nesting: number,
): number {
  if (nesting > MAX_GROUP_NESTING) throw new WireFormatError("groups nested too deeply", depth);
  while (pos < end) {
    pos = readVarint(buf, pos, end, depth);
    const inner = varintLow >>> 3;
    const wireType = varintLow & 7;
    if (wireType === 4) {
      if (inner !== field) throw new WireFormatError(`group ${field} closed by end-group ${inner}`, depth);
      return pos;
    }
    if (inner === 0) throw new WireFormatError(`invalid field number 0 at byte ${pos}`, depth);
    pos = skipField(buf, pos, end, inner, wireType, depth, nesting);
  }
  throw truncated(depth);
}

/** Reads a length prefix; returns where the content starts, its length in varintLow. */
function readLength(buf: Uint8Array, pos: number, end: number, depth: number): number {
  const content = readVarint(buf, pos, end, depth);
  if (varintHigh !== 0 || varintLow > end - content) throw truncated(depth);
  return content;
}

/**
 * Reads a varint of up to 10 bytes into varintLow/varintHigh; returns the position after
 * it. Bits beyond 64 in the tenth byte are dropped, as protobuf parsers do.
 */
export function readVarint(buf: Uint8Array, pos: number, end: number, depth: number): number {
  let low = 0;
  let b: number;
  for (let shift = 0; shift < 28; shift += 7) {
    if (pos >= end) throw truncated(depth);
    b = buf[pos++] as number;
    low |= (b & 0x7f) << shift;
    if (b < 0x80) {
      varintLow = low >>> 0;
      varintHigh = 0;
      return pos;
    }
  }
  if (pos >= end) throw truncated(depth);
  b = buf[pos++] as number;
  low |= (b & 0x0f) << 28;
  let high = (b & 0x7f) >> 4;
  if (b >= 0x80) {
    for (let shift = 3; ; shift += 7) {
      if (shift > 31) throw new WireFormatError("varint longer than 10 bytes", depth);
      if (pos >= end) throw truncated(depth);
      b = buf[pos++] as number;
      high |= (b & 0x7f) << shift;
      if (b < 0x80) break;
    }
  }
  varintLow = low >>> 0;
  varintHigh = high >>> 0;
  return pos;
}

function truncated(depth: number): WireFormatError {
  return new WireFormatError("truncated message", depth);
}
