import protobuf from "protobufjs";
import type { AliasStep, CompiledAlias, ValueFamily } from "./contract.js";

/** How a scalar field travels on the wire and which family its values compare in (S5). */
export interface ScalarKind {
  readonly wireType: 0 | 1 | 2 | 5;
  readonly family: ValueFamily;
}

const varintInt: ScalarKind = { wireType: 0, family: "int" };
const i32Int: ScalarKind = { wireType: 5, family: "int" };
const i64Int: ScalarKind = { wireType: 1, family: "int" };

/** Every scalar type a correlation leaf may have. Enums are varints of the "int" family. */
export const SCALAR_KINDS: Readonly<Record<string, ScalarKind>> = {
  int32: varintInt,
  int64: varintInt,
  uint32: varintInt,
  uint64: varintInt,
  sint32: varintInt,
  sint64: varintInt,
  fixed32: i32Int,
  sfixed32: i32Int,
  fixed64: i64Int,
  sfixed64: i64Int,
  bool: { wireType: 0, family: "bool" },
  double: { wireType: 1, family: "float" },
  float: { wireType: 5, family: "float" },
  string: { wireType: 2, family: "string" },
  bytes: { wireType: 2, family: "bytes" },
};

const ENUM_KIND: ScalarKind = varintInt;

export type AliasResult = { readonly alias: CompiledAlias } | { readonly problem: string };

/**
 * Resolves an alias path ("header.tenant") against the request type: every step but the
 * last must be a singular message field, the last a singular scalar or enum, so the
 * request carries exactly one value per variable (S5). Oneof members are singular and
 * allowed. Field names are the names declared in the .proto file.
 */
export function compileAlias(request: protobuf.Type, variable: string, path: string): AliasResult {
  const fail = (problem: string): AliasResult => ({
    problem: `alias path "${path}" for variable ${variable}: ${problem}`,
  });
  if (path === "") return { problem: `alias for variable ${variable} has an empty path` };
  const names = path.split(".");
  const steps: AliasStep[] = [];
  let message = request;
  for (const [index, name] of names.entries()) {
    const last = index === names.length - 1;
    if (name === "") return fail("empty field name in the path");
    const field = message.fields[name];
    const owner = message.fullName.slice(1);
    if (field === undefined) {
      const known = Object.keys(message.fields);
      const listing = known.length === 0 ? "it has no fields" : `its fields are ${known.join(", ")}`;
      return fail(`message ${owner} has no field ${name}; ${listing}`);
    }
    field.resolve();
    if (field.map) return fail(`field ${name} of ${owner} is a map; correlation needs a single value`);
    if (field.repeated)
      return fail(`field ${name} of ${owner} is repeated; correlation needs a single value`);
    const resolved = field.resolvedType;
    if (resolved instanceof protobuf.Type) {
      if (field.delimited) return fail(`field ${name} of ${owner} is a group; groups are not supported`);
      if (last) {
        return fail(
          `field ${name} of ${owner} is a message (${resolved.fullName.slice(1)}); the path must end at a scalar or enum field`,
        );
      }
      steps.push({ name, number: field.id, wireType: 2 });
      message = resolved;
      continue;
    }
    const leafType = resolved instanceof protobuf.Enum ? resolved.fullName.slice(1) : field.type;
    const kind = resolved instanceof protobuf.Enum ? ENUM_KIND : SCALAR_KINDS[field.type];
    if (kind === undefined) return fail(`field ${name} of ${owner} has unsupported type ${field.type}`);
    if (!last) {
      return fail(
        `field ${name} of ${owner} is ${leafType}, not a message, so the path cannot continue past it`,
      );
    }
    steps.push({ name, number: field.id, wireType: kind.wireType });
    return { alias: { variable, path, steps, leafType, family: kind.family } };
  }
  return fail("empty field name in the path");
}
