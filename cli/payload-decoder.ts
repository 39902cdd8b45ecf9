import {
  createFileRegistry,
  type DescMessage,
  fromBinary,
  type JsonValue,
  type Registry,
  toJson,
} from "@bufbuild/protobuf";
import { protoCamelCase } from "@bufbuild/protobuf/reflect";
import {
  type DescriptorProto,
  type FileDescriptorProto,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { EnvelopeKind } from "../sdk/gen/sessionbridge/v1/envelope.js";
import type { ReflectionClient } from "./reflection-client.js";

interface Methods {
  readonly registry: Registry;
  readonly byName: Map<string, { readonly input: DescMessage; readonly output: DescMessage }>;
}

/** A payload as JSON output shows it: decoded, or base64 with the reason it is not. */
export type PayloadJson =
  | { readonly payload: JsonValue }
  | { readonly payloadBase64: string; readonly payloadUndecoded: string };

export interface PayloadDecoder {
  /**
   * The payload of an envelope of `kind` for `operation` ("/pkg.Service/Method") as
   * protobuf JSON: requests and one-way messages by the method's request type, responses
   * by its response type. Anything else, or a type the bridge cannot describe, falls back
   * to base64 and says why.
   */
  decode(operation: string, kind: EnvelopeKind, payload: Uint8Array, codec: string): Promise<PayloadJson>;
}

/**
 * Decodes with the contracts' own descriptors, fetched from the running bridge's server
 * reflection once per service: the CLI needs no copy of the user's .proto files.
 */
export function createPayloadDecoder(reflection: ReflectionClient): PayloadDecoder {
  const services = new Map<string, Promise<Methods>>();

  function methodsOf(service: string) {
    let methods = services.get(service);
    if (methods === undefined) {
      methods = reflection.filesContaining(service).then((files) => {
        const protos = new Map<string, FileDescriptorProto>();
        for (const bytes of files) {
          const file = withoutEmptyJsonNames(fromBinary(FileDescriptorProtoSchema, bytes));
          // The first file of a name wins, as on the bridge.
          if (!protos.has(file.name)) protos.set(file.name, file);
        }
        const first =
          files[0] === undefined
            ? undefined
            : withoutEmptyJsonNames(fromBinary(FileDescriptorProtoSchema, files[0]));
        if (first === undefined) throw new Error(`no descriptors for ${service}`);
        const registry = createFileRegistry(first, (name) => protos.get(name));
        const desc = registry.getService(service);
        if (desc === undefined) throw new Error(`service ${service} is not described`);
        return {
          registry,
          byName: new Map(desc.methods.map((m) => [m.name, { input: m.input, output: m.output }])),
        };
      });
      // Failures are answered per payload (base64 with the reason), never unobserved.
      methods.catch(() => {});
      services.set(service, methods);
    }
    return methods;
  }

  const fallback = (payload: Uint8Array, why: string): PayloadJson => ({
    payloadBase64: Buffer.from(payload).toString("base64"),
    payloadUndecoded: why,
  });

  return {
    async decode(operation, kind, payload, codec) {
      if (codec === "json") {
        try {
          return { payload: JSON.parse(Buffer.from(payload).toString("utf8")) as JsonValue };
        } catch {
          return fallback(payload, "the payload is not valid JSON");
        }
      }
      const direction =
        kind === EnvelopeKind.ENVELOPE_KIND_REQUEST || kind === EnvelopeKind.ENVELOPE_KIND_ONE_WAY
          ? "input"
          : kind === EnvelopeKind.ENVELOPE_KIND_RESPONSE
            ? "output"
            : undefined;
      if (direction === undefined) return fallback(payload, `no message type for a ${kindName(kind)} entry`);
      const match = /^\/([^/]+)\/([^/]+)$/.exec(operation);
      if (match === null) return fallback(payload, `not a method name: ${operation}`);
      const [, service = "", method = ""] = match;
      let methods: Methods;
      try {
        methods = await methodsOf(service);
      } catch (error) {
        return fallback(payload, `unknown type: ${error instanceof Error ? error.message : String(error)}`);
      }
      const desc = methods.byName.get(method)?.[direction];
      if (desc === undefined) return fallback(payload, `unknown method ${operation}`);
      try {
        return { payload: toJson(desc, fromBinary(desc, payload), { registry: methods.registry }) };
      } catch (error) {
        return fallback(
          payload,
          `not a valid ${desc.typeName}: ${error instanceof Error ? error.message : String(error)}`,
        );
      }
    },
  };
}

/**
 * protoc fills in every field's json_name, and the registry relies on it; descriptors
 * written without it would give every field the JSON name "". Missing names are derived
 * from the field name, as protoc does.
 */
function withoutEmptyJsonNames(file: FileDescriptorProto): FileDescriptorProto {
  const visit = (message: DescriptorProto): void => {
    for (const field of message.field) {
      if (field.jsonName === "") field.jsonName = protoCamelCase(field.name);
    }
    for (const nested of message.nestedType) visit(nested);
  };
  for (const message of file.messageType) visit(message);
  // Extensions need none: the registry names them [full.name].
  return file;
}

export function kindName(kind: EnvelopeKind): string {
  return EnvelopeKind[kind]?.replace("ENVELOPE_KIND_", "") ?? String(kind);
}
