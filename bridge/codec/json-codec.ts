import {
  type DescField,
  type DescMessage,
  fromBinary,
  fromJson,
  type JsonValue,
  type Registry,
  toBinary,
  toJsonString,
} from "@bufbuild/protobuf";
import { DEFAULTS } from "../config/config.js";
import type { ContractSet } from "../contracts/contract.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";

export interface JsonCodecOptions {
  /** Largest JSON text (UTF-8) or binary message accepted, checked before parsing. Default defaults.maxPayloadBytes. */
  readonly maxInputBytes?: number;
  /** Deepest nesting of JSON objects and arrays accepted, checked before parsing. Default 100, protobuf's recursion limit. */
  readonly maxDepth?: number;
}

/**
 * Transcodes between the proto3 JSON mapping and binary protobuf with the compiled
 * contracts, for the edges that speak JSON (design §7: inside the bridge a payload is
 * always binary). Names are full message names ("examples.orders.v1.AddItem").
 */
export interface JsonCodec {
  /**
   * JSON text to binary. Malformed JSON or a value that does not fit its field is
   * INVALID_ARGUMENT, reason MALFORMED_MESSAGE, naming the field path (`items[2].qty`);
   * input over the size or depth limit is refused before it is parsed.
   */
  toBinary(typeName: string, jsonText: string): Uint8Array;
  /** Binary to JSON text (proto3 JSON mapping: lowerCamelCase names, defaults omitted). */
  toJson(typeName: string, bytes: Uint8Array): string;
}

const DEFAULT_MAX_DEPTH = 100;

export function createJsonCodec(
  contracts: Pick<ContractSet, "registry">,
  options: JsonCodecOptions = {},
): JsonCodec {
  const maxInputBytes = options.maxInputBytes ?? DEFAULTS.maxPayloadBytes;
  const maxDepth = options.maxDepth ?? DEFAULT_MAX_DEPTH;
  for (const [name, value] of [
    ["maxInputBytes", maxInputBytes],
    ["maxDepth", maxDepth],
  ] as const) {
    if (!Number.isSafeInteger(value) || value <= 0) {
      throw new BridgeError(
        Code.INVALID_ARGUMENT,
        Reason.INVALID_CONFIG,
        `json codec: ${name} must be a positive integer, got ${value}`,
      );
    }
  }
  const registry = contracts.registry;
  const schemaOf = (typeName: string): DescMessage => {
    const schema = registry.getMessage(typeName);
    if (schema === undefined) {
      throw new BridgeError(Code.INTERNAL, Reason.INTERNAL, `no message type ${typeName} in the contracts`);
    }
    return schema;
  };
  const readOptions = { registry };
  return {
    toBinary(typeName, jsonText) {
      const schema = schemaOf(typeName);
      // A UTF-16 code unit is at least one UTF-8 byte: the length alone rules out most
      // oversized input without counting.
      if (jsonText.length > maxInputBytes || Buffer.byteLength(jsonText, "utf8") > maxInputBytes) {
        throw tooLarge(typeName, "JSON text", maxInputBytes);
      }
      const depth = nestingDepth(jsonText, maxDepth);
      if (depth > maxDepth) {
        throw malformed(typeName, "", `JSON nested deeper than ${maxDepth} levels`);
      }
      let json: JsonValue;
      try {
        json = JSON.parse(jsonText) as JsonValue;
      } catch (error) {
        throw malformed(typeName, "", `not valid JSON: ${(error as Error).message}`, error);
      }
      let message: ReturnType<typeof fromJson>;
      try {
        message = fromJson(schema, json, readOptions);
      } catch (error) {
        const found = locate(schema, json, "", readOptions);
        throw malformed(typeName, found?.path ?? "", found?.reason ?? reasonOf(error), error);
      }
      return toBinary(schema, message);
    },
    toJson(typeName, bytes) {
      const schema = schemaOf(typeName);
      if (bytes.byteLength > maxInputBytes) throw tooLarge(typeName, "binary message", maxInputBytes);
      let message: ReturnType<typeof fromBinary>;
      try {
        message = fromBinary(schema, bytes);
      } catch (error) {
        throw malformed(typeName, "", `not a valid binary message: ${reasonOf(error)}`, error);
      }
      try {
        return toJsonString(schema, message, { registry });
      } catch (error) {
        throw malformed(typeName, "", `cannot be written as JSON: ${reasonOf(error)}`, error);
      }
    },
  };
}

/**
 * The depth of the deepest object or array, counting only up to `limit + 1` so a hostile
 * input costs one pass. Brackets inside strings do not count.
 */
function nestingDepth(text: string, limit: number): number {
  let depth = 0;
  let deepest = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 0x5c) i++;
      else if (c === 0x22) inString = false;
    } else if (c === 0x22) {
      inString = true;
    } else if (c === 0x7b || c === 0x5b) {
      depth++;
      if (depth > deepest) {
        deepest = depth;
        if (deepest > limit) return deepest;
      }
    } else if (c === 0x7d || c === 0x5d) {
      depth--;
    }
  }
  return deepest;
}

interface Located {
  readonly path: string;
  readonly reason: string;
}

type ReadOptions = { readonly registry: Registry };

/**
 * Finds the first field whose JSON value does not decode, as a path such as
 * `items[2].qty` or `labels["x"]`. It runs only after decoding failed: it walks the
 * parsed JSON once, descending into message values, and decodes each leaf on its own
 * (a message holding just that field), so it agrees with @bufbuild/protobuf on what is
 * wrong. Well-known types (google.protobuf.*) have their own JSON forms and are leaves.
 */
function locate(
  schema: DescMessage,
  json: JsonValue,
  path: string,
  options: ReadOptions,
): Located | undefined {
  if (json === null || typeof json !== "object" || Array.isArray(json) || isWellKnown(schema)) {
    return leaf(schema, undefined, json, path, options);
  }
  for (const [key, value] of Object.entries(json)) {
    const field = schema.fields.find((f) => f.jsonName === key || f.name === key);
    const here = path === "" ? key : `${path}.${key}`;
    if (field === undefined || value === null) {
      const problem = leaf(schema, key, value, here, options);
      if (problem !== undefined) return problem;
      continue;
    }
    const problem = locateField(schema, field, key, value, here, options);
    if (problem !== undefined) return problem;
  }
  return undefined;
}

function locateField(
  schema: DescMessage,
  field: DescField,
  key: string,
  value: JsonValue,
  here: string,
  options: ReadOptions,
): Located | undefined {
  switch (field.fieldKind) {
    case "message":
      return isWellKnown(field.message)
        ? leaf(schema, key, value, here, options)
        : locate(field.message, value, here, options);
    case "list":
      if (!Array.isArray(value)) return leaf(schema, key, value, here, options);
      for (const [i, item] of value.entries()) {
        const at = `${here}[${i}]`;
        const problem =
          field.listKind === "message" && !isWellKnown(field.message)
            ? locate(field.message, item, at, options)
            : leaf(schema, key, [item], at, options);
        if (problem !== undefined) return problem;
      }
      return undefined;
    case "map":
      if (value === null || typeof value !== "object" || Array.isArray(value)) {
        return leaf(schema, key, value, here, options);
      }
      for (const [entryKey, item] of Object.entries(value)) {
        const at = `${here}[${JSON.stringify(entryKey)}]`;
        let problem: Located | undefined;
        if (field.mapKind === "message" && !isWellKnown(field.message)) {
          // An empty message value is always valid: a failure then is the key's.
          problem =
            leaf(schema, key, { [entryKey]: {} }, at, options) ?? locate(field.message, item, at, options);
        } else {
          problem = leaf(schema, key, { [entryKey]: item }, at, options);
        }
        if (problem !== undefined) return problem;
      }
      return undefined;
    default:
      return leaf(schema, key, value, here, options);
  }
}

/** Decodes one field alone (or the whole value when key is undefined); the problem, if any, at `path`. */
function leaf(
  schema: DescMessage,
  key: string | undefined,
  value: JsonValue,
  path: string,
  options: ReadOptions,
): Located | undefined {
  try {
    fromJson(schema, key === undefined ? value : { [key]: value }, options);
    return undefined;
  } catch (error) {
    return { path, reason: reasonOf(error) };
  }
}

function isWellKnown(schema: DescMessage): boolean {
  return schema.typeName.startsWith("google.protobuf.");
}

/** @bufbuild/protobuf's message without the "cannot decode field X from JSON: " preamble. */
function reasonOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const afterPreamble = text.includes(" from JSON: ")
    ? text.slice(text.lastIndexOf(" from JSON: ") + 12)
    : text;
  return afterPreamble.replace(/^list item #\d+: /, "").replace(/^map entry "[^"]*": /, "");
}

function malformed(typeName: string, path: string, reason: string, cause?: unknown): BridgeError {
  const where = path === "" ? "" : ` at ${path}`;
  return new BridgeError(
    Code.INVALID_ARGUMENT,
    Reason.MALFORMED_MESSAGE,
    `invalid ${typeName}${where}: ${reason}`,
    {
      metadata: path === "" ? { type: typeName } : { type: typeName, field: path },
      ...(cause === undefined ? {} : { cause }),
    },
  );
}

function tooLarge(typeName: string, what: string, limit: number): BridgeError {
  return new BridgeError(
    Code.RESOURCE_EXHAUSTED,
    Reason.INVALID_REQUEST,
    `${what} for ${typeName} exceeds the limit of ${limit} bytes`,
    { metadata: { type: typeName, max_bytes: String(limit) } },
  );
}
