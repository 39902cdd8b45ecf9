import { DEFAULTS } from "../config/config.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { CompiledAlias, OperationContract, ValueFamily } from "./contract.js";
import { keyPart, keyPrefix } from "./correlation-key.js";
import {
  findLeaf,
  type LeafLocation,
  readVarint,
  varintHigh,
  varintLow,
  WireFormatError,
} from "./wire-scan.js";

/** The correlation values of one request. */
export interface ExtractedCorrelation {
  readonly set: string;
  /** Canonical text by variable (see canonical forms below). */
  readonly values: Record<string, string>;
  /** The correlation index key (see correlationKeyOf). */
  readonly key: string;
}

/*
 * Canonical text of a value, per family. S5 compares exactly on the protobuf value (no
 * coercion between families, unlike Jolie), so each value has one text:
 * - string: the UTF-8 decoded text; invalid UTF-8 is a malformed message.
 * - bytes: base64url without padding.
 * - int (every integer type and enums): the decimal of the exact value with the field's
 *   signedness, zigzag and width; int32 and enums take the low 32 bits as signed, so a
 *   negative int32 sent as a 10-byte varint reads correctly; 64-bit values beyond 2^53
 *   stay exact (BigInt).
 * - float: the shortest decimal that reads back as the same value, in JavaScript's
 *   Number-to-string form ("0.1", "1e+21", "NaN", "-Infinity"); a float field is read as
 *   float32, so 0.1f is "0.1". -0 is "0" (it equals 0) and every NaN is "NaN", so a
 *   value always equals itself.
 * - bool: "true" or "false".
 * A field absent from the message is missing (S4), and so is a field holding its type's
 * default (empty string or bytes, 0, false, the enum's zero): proto3 does not tell an unset
 * field from a default one, and encoders differ in whether they write a default that was
 * set explicitly (some do, most do not), so both must route alike. For the same
 * reason a default never correlates in a field with explicit presence either.
 */

/** The canonical text of each family's default value. */
const DEFAULT_TEXT: Readonly<Record<ValueFamily, string>> = {
  string: "",
  bytes: "",
  int: "0",
  float: "0",
  bool: "false",
};

const leaf: LeafLocation = { found: false, start: 0, end: 0 };
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });
const scratch = new DataView(new ArrayBuffer(8));

/**
 * Reads the correlation values of a request from its wire bytes, without decoding the
 * message (this runs for every call). Throws INVALID_ARGUMENT with reason
 * MALFORMED_MESSAGE when the bytes are not a valid encoding along an alias path, and
 * MISSING_CORRELATION_VALUE when an alias field is absent or holds its default, and
 * CORRELATION_VALUE_TOO_LARGE when a value's encoding is longer than `maxValueBytes`:
 * such a message never starts or reaches a session (S4). The length is checked before
 * the value is decoded, so an oversized value costs no allocation and never reaches the
 * correlation index, where every live session keeps its values (S5).
 */
export function extractCorrelation(
  op: OperationContract,
  payload: Uint8Array,
  maxValueBytes: number = DEFAULTS.maxCorrelationValueBytes,
): ExtractedCorrelation {
  const correlation = op.correlation;
  if (correlation === undefined) {
    throw new BridgeError(Code.INTERNAL, Reason.INTERNAL, `operation ${op.path} has no correlation`);
  }
  const values: Record<string, string> = {};
  let key = keyPrefix(correlation.set);
  for (const alias of correlation.aliases) {
    try {
      findLeaf(payload, alias.steps, leaf);
    } catch (error) {
      throw malformed(op, alias, error);
    }
    if (!leaf.found) throw missing(op, alias, `field ${alias.path}`);
    if (leaf.end - leaf.start > maxValueBytes)
      throw tooLarge(op, alias, leaf.end - leaf.start, maxValueBytes);
    const text = canonicalText(op, alias, payload, leaf.start, leaf.end);
    if (text === DEFAULT_TEXT[alias.family]) {
      throw missing(op, alias, `field ${alias.path} holds the default value, which counts as absent`);
    }
    values[alias.variable] = text;
    key += keyPart(alias.family, text);
  }
  return { set: correlation.set, values, key };
}

function canonicalText(
  op: OperationContract,
  alias: CompiledAlias,
  buf: Uint8Array,
  start: number,
  end: number,
): string {
  switch (alias.family) {
    case "string":
      return decodeString(op, alias, buf, start, end);
    case "bytes":
      return Buffer.from(buf.buffer, buf.byteOffset + start, end - start).toString("base64url");
    case "bool":
      readVarint(buf, start, end, 0);
      return varintLow !== 0 || varintHigh !== 0 ? "true" : "false";
    case "float":
      return alias.leafType === "float" ? float32Text(buf, start) : float64Text(buf, start);
    case "int":
      return integerText(alias.leafType, buf, start, end);
  }
}

function decodeString(
  op: OperationContract,
  alias: CompiledAlias,
  buf: Uint8Array,
  start: number,
  end: number,
): string {
  try {
    return utf8.decode(buf.subarray(start, end));
  } catch (error) {
    throw malformed(
      op,
      alias,
      new WireFormatError("string field is not valid UTF-8", alias.steps.length),
      error,
    );
  }
}

function integerText(leafType: string, buf: Uint8Array, start: number, end: number): string {
  switch (leafType) {
    case "fixed32":
      return String(readFixed32(buf, start) >>> 0);
    case "sfixed32":
      return String(readFixed32(buf, start) | 0);
    case "fixed64":
      return unsignedText(readFixed32(buf, start) >>> 0, readFixed32(buf, start + 4) >>> 0);
    case "sfixed64":
      return signedText(readFixed32(buf, start) >>> 0, readFixed32(buf, start + 4) >>> 0);
    default:
      break;
  }
  readVarint(buf, start, end, 0);
  const low = varintLow;
  const high = varintHigh;
  switch (leafType) {
    case "uint32":
      return String(low);
    case "sint32":
      return String((low >>> 1) ^ -(low & 1));
    case "int64":
      return signedText(low, high);
    case "uint64":
      return unsignedText(low, high);
    case "sint64": {
      const mask = -(low & 1);
      return signedText((((low >>> 1) | (high << 31)) ^ mask) >>> 0, ((high >>> 1) ^ mask) >>> 0);
    }
    default:
      // int32 and enums: the low 32 bits, signed.
      return String(low | 0);
  }
}

function readFixed32(buf: Uint8Array, pos: number): number {
  return (
    ((buf[pos] as number) |
      ((buf[pos + 1] as number) << 8) |
      ((buf[pos + 2] as number) << 16) |
      ((buf[pos + 3] as number) << 24)) >>>
    0
  );
}

/** Decimal of the unsigned 64-bit value high·2^32 + low (both unsigned 32-bit). */
function unsignedText(low: number, high: number): string {
  // Below 2^53 a double holds the value exactly.
  if (high < 0x200000) return String(high * 0x100000000 + low);
  return ((BigInt(high) << 32n) | BigInt(low)).toString();
}

/** Decimal of the two's-complement 64-bit value. */
function signedText(low: number, high: number): string {
  if (high < 0x80000000) return unsignedText(low, high);
  const negLow = (~low + 1) >>> 0;
  const negHigh = (~high + (negLow === 0 ? 1 : 0)) >>> 0;
  return `-${unsignedText(negLow, negHigh)}`;
}

function float64Text(buf: Uint8Array, pos: number): string {
  for (let i = 0; i < 8; i++) scratch.setUint8(i, buf[pos + i] as number);
  // Number-to-string is already the shortest round-trip form for a double.
  return String(scratch.getFloat64(0, true));
}

function float32Text(buf: Uint8Array, pos: number): string {
  for (let i = 0; i < 4; i++) scratch.setUint8(i, buf[pos + i] as number);
  const value = scratch.getFloat32(0, true);
  if (!Number.isFinite(value) || value === 0) return String(value);
  // The double holding a float32 prints all its digits; find the fewest that read back
  // as the same float32. Re-reading the digits as a double drops trailing zeros.
  for (let digits = 1; digits < 9; digits++) {
    const text = value.toPrecision(digits);
    if (Math.fround(Number(text)) === value) return String(Number(text));
  }
  return String(Number(value.toPrecision(9)));
}

function missing(op: OperationContract, alias: CompiledAlias, why: string): BridgeError {
  return new BridgeError(
    Code.INVALID_ARGUMENT,
    Reason.MISSING_CORRELATION_VALUE,
    `request for ${op.path} has no value for correlation variable ${alias.variable} (${why})`,
    { metadata: { operation: op.path, variable: alias.variable, path: alias.path } },
  );
}

function tooLarge(op: OperationContract, alias: CompiledAlias, bytes: number, max: number): BridgeError {
  return new BridgeError(
    Code.INVALID_ARGUMENT,
    Reason.CORRELATION_VALUE_TOO_LARGE,
    `request for ${op.path}: correlation field ${alias.path} (variable ${alias.variable}) holds ${bytes} bytes, more than the ${max} a correlation value may have`,
    {
      metadata: {
        operation: op.path,
        variable: alias.variable,
        path: alias.path,
        max_bytes: String(max),
      },
    },
  );
}

function malformed(
  op: OperationContract,
  alias: CompiledAlias,
  error: unknown,
  cause: unknown = error,
): BridgeError {
  if (!(error instanceof WireFormatError)) return BridgeError.from(error);
  const within = alias.steps
    .slice(0, error.depth)
    .map((step) => step.name)
    .join(".");
  const place = within === "" ? "" : ` inside ${within}`;
  return new BridgeError(
    Code.INVALID_ARGUMENT,
    Reason.MALFORMED_MESSAGE,
    `malformed request for ${op.path} while reading correlation field ${alias.path}${place}: ${error.message}`,
    { metadata: { operation: op.path, variable: alias.variable, path: alias.path }, cause },
  );
}
