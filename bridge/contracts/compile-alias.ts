import { type DescMessage, ScalarType } from "@bufbuild/protobuf";
import type { AliasStep, CompiledAlias, ValueFamily } from "./contract.js";

/** How a scalar field travels on the wire and which family its values compare in (S5). */
export interface ScalarKind {
  /** The type as written in .proto files. */
  readonly name: string;
  readonly wireType: 0 | 1 | 2 | 5;
  readonly family: ValueFamily;
}

const varintInt = (name: string): ScalarKind => ({ name, wireType: 0, family: "int" });
const i32Int = (name: string): ScalarKind => ({ name, wireType: 5, family: "int" });
const i64Int = (name: string): ScalarKind => ({ name, wireType: 1, family: "int" });

/** Every scalar type a correlation leaf may have. Enums are varints of the "int" family. */
export const SCALAR_KINDS: Readonly<Record<ScalarType, ScalarKind>> = {
  [ScalarType.INT32]: varintInt("int32"),
  [ScalarType.INT64]: varintInt("int64"),
  [ScalarType.UINT32]: varintInt("uint32"),
  [ScalarType.UINT64]: varintInt("uint64"),
  [ScalarType.SINT32]: varintInt("sint32"),
  [ScalarType.SINT64]: varintInt("sint64"),
  [ScalarType.FIXED32]: i32Int("fixed32"),
  [ScalarType.SFIXED32]: i32Int("sfixed32"),
  [ScalarType.FIXED64]: i64Int("fixed64"),
  [ScalarType.SFIXED64]: i64Int("sfixed64"),
  [ScalarType.BOOL]: { name: "bool", wireType: 0, family: "bool" },
  [ScalarType.DOUBLE]: { name: "double", wireType: 1, family: "float" },
  [ScalarType.FLOAT]: { name: "float", wireType: 5, family: "float" },
  [ScalarType.STRING]: { name: "string", wireType: 2, family: "string" },
  [ScalarType.BYTES]: { name: "bytes", wireType: 2, family: "bytes" },
};

export type AliasResult = { readonly alias: CompiledAlias } | { readonly problem: string };

/**
 * Resolves an alias path ("header.tenant") against the request type: every step but the
 * last must be a singular message field, the last a singular scalar or enum, so the
 * request carries exactly one value per variable (S5). Oneof members are singular and
 * allowed. Field names are the names declared in the .proto file.
 */
export function compileAlias(request: DescMessage, variable: string, path: string): AliasResult {
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
    const field = message.fields.find((f) => f.name === name);
    const owner = message.typeName;
    if (field === undefined) {
      const known = message.fields.map((f) => f.name);
      const listing = known.length === 0 ? "it has no fields" : `its fields are ${known.join(", ")}`;
      return fail(`message ${owner} has no field ${name}; ${listing}`);
    }
    switch (field.fieldKind) {
      case "map":
        return fail(`field ${name} of ${owner} is a map; correlation needs a single value`);
      case "list":
        return fail(`field ${name} of ${owner} is repeated; correlation needs a single value`);
      case "message":
        if (field.delimitedEncoding)
          return fail(`field ${name} of ${owner} is a group; groups are not supported`);
        if (last) {
          return fail(
            `field ${name} of ${owner} is a message (${field.message.typeName}); the path must end at a scalar or enum field`,
          );
        }
        steps.push({ name, number: field.number, wireType: 2 });
        message = field.message;
        continue;
      case "enum":
      case "scalar": {
        const kind = field.fieldKind === "enum" ? SCALAR_KINDS[ScalarType.INT32] : SCALAR_KINDS[field.scalar];
        const leafType = field.fieldKind === "enum" ? field.enum.typeName : kind.name;
        if (!last) {
          return fail(
            `field ${name} of ${owner} is ${leafType}, not a message, so the path cannot continue past it`,
          );
        }
        steps.push({ name, number: field.number, wireType: kind.wireType });
        return { alias: { variable, path, steps, leafType, family: kind.family } };
      }
    }
  }
  return fail("empty field name in the path");
}
