import protobuf from "protobufjs";
import { closestName } from "../util/did-you-mean.js";

/** The option names a contract uses, as protobufjs spells them in parsedOptions. */
export const SERVICE_OPTION = "(sessionbridge.v1.service)";
export const METHOD_OPTION = "(sessionbridge.v1.method)";
export const SERVICE_OPTIONS_TYPE = "sessionbridge.v1.ServiceSessionOptions";
export const METHOD_OPTIONS_TYPE = "sessionbridge.v1.MethodSessionOptions";

/** Every option in the sessionbridge namespace must be one of the two declared above. */
const SESSIONBRIDGE_OPTION_PREFIX = "(sessionbridge.";

/**
 * A normalised option message: keys are proto field names, repeated fields are arrays,
 * enum values are their names, integers are safe numbers. Only fields that were set
 * appear.
 */
export type OptionMessage = { readonly [field: string]: OptionValue | undefined };
export type OptionValue = string | number | boolean | OptionMessage | readonly OptionValue[];

/**
 * Reads one sessionbridge option of a service or method and normalises it against the
 * real option message type.
 *
 * protobufjs keeps aggregate options as parsedOptions, an array of objects keyed by
 * option name. Several `option (x).a = …; option (x).b = …;` lines merge into one entry,
 * while each `option (x) = {…};` adds its own, so all entries of the option are merged.
 * Text format gives no hint of repetition, so a repeated field written once arrives as
 * a single value and one written several times as an array; enum values arrive as names
 * or numbers. A field name the option type does not declare is reported (a typo such as
 * `start_session` would otherwise silently mean "not a starter").
 *
 * Returns undefined when the object carries no such option.
 */
export function readSessionOption(
  object: protobuf.ReflectionObject,
  optionName: string,
  type: protobuf.Type,
  report: (message: string) => void,
): OptionMessage | undefined {
  const entries = optionEntries(object);
  let merged: Record<string, unknown> | undefined;
  for (const entry of entries) {
    for (const [name, value] of Object.entries(entry)) {
      if (name === optionName) {
        merged = mergeRaw(merged ?? {}, value, name, report);
      } else if (name === SERVICE_OPTION || name === METHOD_OPTION) {
        report(`option ${name} does not apply here; use ${optionName}`);
      } else if (name.startsWith(SESSIONBRIDGE_OPTION_PREFIX)) {
        report(`unknown option ${name}: sessionbridge declares only ${SERVICE_OPTION} and ${METHOD_OPTION}`);
      }
    }
  }
  if (merged === undefined) return undefined;
  return normaliseMessage(merged, type, "", report);
}

/** True when the object carries any option of the sessionbridge namespace. */
export function hasSessionOption(object: protobuf.ReflectionObject): boolean {
  return optionEntries(object).some((entry) =>
    Object.keys(entry).some((k) => k.startsWith(SESSIONBRIDGE_OPTION_PREFIX)),
  );
}

/** parsedOptions is null or absent on objects declared without options. */
function optionEntries(object: protobuf.ReflectionObject): readonly Record<string, unknown>[] {
  const entries: unknown = object.parsedOptions;
  return Array.isArray(entries) ? entries.filter(isRecord) : [];
}

/** Merges one parsedOptions entry into the accumulated one the way protobufjs merges option lines. */
function mergeRaw(
  into: Record<string, unknown>,
  value: unknown,
  name: string,
  report: (message: string) => void,
): Record<string, unknown> {
  if (!isRecord(value)) {
    report(`option ${name} must be a message, got ${describe(value)}`);
    return into;
  }
  for (const [key, item] of Object.entries(value)) {
    const previous = into[key];
    into[key] = previous === undefined ? item : ([] as unknown[]).concat(previous, item);
  }
  return into;
}

function normaliseMessage(
  raw: unknown,
  type: protobuf.Type,
  prefix: string,
  report: (message: string) => void,
): OptionMessage {
  const out: Record<string, OptionValue> = {};
  if (!isRecord(raw)) {
    report(
      `option field ${prefix || "value"} must be a ${type.fullName.slice(1)} message, got ${describe(raw)}`,
    );
    return out;
  }
  for (const [key, value] of Object.entries(raw)) {
    const where = prefix + key;
    const field = type.fields[key];
    if (field === undefined) {
      report(unknownField(where, key, type));
      continue;
    }
    if (field.repeated) {
      const items = Array.isArray(value) ? value : [value];
      const values: OptionValue[] = [];
      items.forEach((item, i) => {
        const normalised = normaliseValue(item, field, `${where}[${i}]`, report);
        if (normalised !== undefined) values.push(normalised);
      });
      out[key] = values;
    } else if (Array.isArray(value)) {
      report(`option field ${where} is set more than once, but it is not repeated`);
    } else {
      const normalised = normaliseValue(value, field, where, report);
      if (normalised !== undefined) out[key] = normalised;
    }
  }
  return out;
}

function normaliseValue(
  value: unknown,
  field: protobuf.Field,
  where: string,
  report: (message: string) => void,
): OptionValue | undefined {
  const resolved = field.resolvedType;
  if (resolved instanceof protobuf.Type) return normaliseMessage(value, resolved, `${where}.`, report);
  if (resolved instanceof protobuf.Enum) return normaliseEnum(value, resolved, where, report);
  switch (field.type) {
    case "bool":
      if (typeof value === "boolean") return value;
      report(`option field ${where} expects true or false, got ${describe(value)}`);
      return undefined;
    case "string":
      if (typeof value === "string") return value;
      report(`option field ${where} expects a string, got ${describe(value)}`);
      return undefined;
    case "double":
    case "float":
      if (typeof value === "number") return value;
      report(`option field ${where} expects a number, got ${describe(value)}`);
      return undefined;
    default:
      return normaliseInteger(value, field.type, where, report);
  }
}

function normaliseInteger(
  value: unknown,
  type: string,
  where: string,
  report: (message: string) => void,
): number | undefined {
  if (typeof value !== "number" || !Number.isInteger(value)) {
    report(`option field ${where} expects an integer (${type}), got ${describe(value)}`);
    return undefined;
  }
  if (type.startsWith("uint") || type.startsWith("fixed")) {
    if (value < 0) {
      report(`option field ${where} must not be negative (${type}), got ${value}`);
      return undefined;
    }
  }
  // Text format reads integers as doubles: beyond 2^53 the value is no longer the one written.
  if (!Number.isSafeInteger(value)) {
    report(
      `option field ${where} is too large to represent exactly (${type}, at most ${Number.MAX_SAFE_INTEGER})`,
    );
    return undefined;
  }
  return value;
}

function normaliseEnum(
  value: unknown,
  type: protobuf.Enum,
  where: string,
  report: (message: string) => void,
): string | undefined {
  if (typeof value === "string" && Object.hasOwn(type.values, value)) return value;
  if (typeof value === "number") {
    const name = type.valuesById[value];
    if (name !== undefined) return name;
  }
  report(
    `option field ${where} expects one of ${Object.keys(type.values).join(", ")}, got ${describe(value)}`,
  );
  return undefined;
}

function unknownField(where: string, key: string, type: protobuf.Type): string {
  const names = Object.keys(type.fields);
  const near = closestName(key, names);
  const hint = near === undefined ? "" : ` (did you mean ${near}?)`;
  return `unknown option field ${where}: ${type.fullName.slice(1)} has no field ${key}${hint}; its fields are ${names.join(", ")}`;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function describe(value: unknown): string {
  if (typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) return "a list";
  if (isRecord(value)) return "a message";
  return String(value);
}
