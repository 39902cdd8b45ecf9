import path from "node:path";
import protobuf from "protobufjs";
import descriptor from "protobufjs/ext/descriptor/index.js";

/**
 * FileDescriptorProtos for server reflection, one per .proto file as written, built from
 * the parsed definitions. protobufjs's own toDescriptor() merges files by package and
 * leaves type names relative and map entries misnamed, which clients such as grpcurl
 * reject; this builds them the way protoc does: fully qualified type names, map entries
 * named <Field>Entry, real file names and dependencies.
 */
export function fileDescriptorProtos(root: protobuf.Root, searchPaths: readonly string[]): Buffer[] {
  const files = new Map<string, FileBuilder>();
  const nameOf = (object: protobuf.ReflectionObject): string =>
    object.filename ? importName(object.filename, searchPaths) : wellKnownFile(object);
  const fileFor = (object: protobuf.ReflectionObject): FileBuilder => {
    const name = nameOf(object);
    let file = files.get(name);
    if (file === undefined) {
      file = new FileBuilder(name, packageOf(object), syntaxOf(object));
      files.set(name, file);
    }
    return file;
  };

  const visit = (namespace: protobuf.NamespaceBase): void => {
    for (const object of namespace.nestedArray) {
      if (object instanceof protobuf.Type) {
        const file = fileFor(object);
        file.messages.push(messageDescriptor(object, (ref) => file.depend(nameOf(ref))));
      } else if (object instanceof protobuf.Enum) {
        fileFor(object).enums.push(enumDescriptor(object));
      } else if (object instanceof protobuf.Service) {
        const file = fileFor(object);
        file.services.push(serviceDescriptor(object, (ref) => file.depend(nameOf(ref))));
      } else if (object instanceof protobuf.Field && object.extend !== undefined) {
        const file = fileFor(object);
        file.extensions.push(fieldDescriptor(object, (ref) => file.depend(nameOf(ref))));
        const extendee = object.extensionField?.parent ?? namespace.lookup(object.extend);
        if (extendee !== null && extendee !== undefined) file.depend(nameOf(extendee));
      }
      if (
        object instanceof protobuf.Namespace &&
        !(object instanceof protobuf.Type) &&
        !(object instanceof protobuf.Service)
      ) {
        visit(object);
      }
    }
  };
  visit(root);
  return [...files.values()].map((f) => f.encode());
}

class FileBuilder {
  readonly messages: object[] = [];
  readonly enums: object[] = [];
  readonly services: object[] = [];
  readonly extensions: object[] = [];
  readonly #dependencies = new Set<string>();

  constructor(
    readonly name: string,
    readonly pkg: string,
    readonly syntax: string,
  ) {}

  depend(file: string): void {
    if (file !== this.name && file !== "") this.#dependencies.add(file);
  }

  encode(): Buffer {
    const message = descriptor.FileDescriptorProto.fromObject({
      name: this.name,
      package: this.pkg,
      dependency: [...this.#dependencies].sort(),
      messageType: this.messages,
      enumType: this.enums,
      service: this.services,
      extension: this.extensions,
      syntax: this.syntax,
    });
    return Buffer.from(descriptor.FileDescriptorProto.encode(message).finish());
  }
}

type Depend = (referenced: protobuf.ReflectionObject) => void;

function messageDescriptor(type: protobuf.Type, depend: Depend): object {
  const nested: object[] = [];
  const enums: object[] = [];
  const extensions: object[] = [];
  for (const object of type.nestedArray) {
    if (object instanceof protobuf.Type) nested.push(messageDescriptor(object, depend));
    else if (object instanceof protobuf.Enum) enums.push(enumDescriptor(object));
    else if (object instanceof protobuf.Field && object.extend !== undefined)
      extensions.push(fieldDescriptor(object, depend));
  }
  const oneofs = type.oneofsArray;
  // Extensions declared elsewhere appear here as "sister" fields; they belong to their own file.
  const fields = type.fieldsArray
    .filter((field) => field.declaringField === null || field.declaringField === undefined)
    .map((field) => {
      if (field instanceof protobuf.MapField) {
        const entry = mapEntryName(field.name);
        nested.push(mapEntryDescriptor(entry, field, depend));
        return {
          name: field.name,
          number: field.id,
          label: LABEL_REPEATED,
          type: TYPE_MESSAGE,
          typeName: `${qualified(type)}.${entry}`,
        };
      }
      const out: Record<string, unknown> = fieldDescriptor(field, depend);
      if (field.partOf !== null && field.partOf !== undefined) out.oneofIndex = oneofs.indexOf(field.partOf);
      if (field.options?.proto3_optional === true) out.proto3Optional = true;
      return out;
    });
  return {
    name: type.name,
    field: fields,
    nestedType: nested,
    enumType: enums,
    extension: extensions,
    oneofDecl: oneofs.map((o) => ({ name: o.name })),
  };
}

function mapEntryDescriptor(name: string, field: protobuf.MapField, depend: Depend): object {
  const value: Record<string, unknown> = {
    name: "value",
    number: 2,
    label: LABEL_OPTIONAL,
    ...typeOf(field as unknown as protobuf.Field, depend),
  };
  return {
    name,
    field: [{ name: "key", number: 1, label: LABEL_OPTIONAL, type: SCALAR[field.keyType] }, value],
    options: { mapEntry: true },
  };
}

function fieldDescriptor(field: protobuf.Field, depend: Depend): Record<string, unknown> {
  const out: Record<string, unknown> = {
    name: field.name,
    number: field.id,
    label: field.repeated ? LABEL_REPEATED : field.required ? LABEL_REQUIRED : LABEL_OPTIONAL,
    ...typeOf(field, depend),
  };
  if (field.extend !== undefined) {
    const extendee = field.extensionField?.parent ?? field.parent?.lookup(field.extend);
    out.extendee =
      extendee instanceof protobuf.Type ? qualified(extendee) : `.${field.extend.replace(/^\./, "")}`;
  }
  if (field.repeated && field.options?.packed === false) out.options = { packed: false };
  return out;
}

function typeOf(field: protobuf.Field, depend: Depend): { type: number; typeName?: string } {
  const scalar = SCALAR[field.type];
  if (scalar !== undefined) return { type: scalar };
  const resolved = field.resolve().resolvedType;
  if (resolved === null) throw new Error(`unresolved type ${field.type} of field ${field.fullName}`);
  depend(resolved);
  return {
    type: resolved instanceof protobuf.Enum ? TYPE_ENUM : TYPE_MESSAGE,
    typeName: qualified(resolved),
  };
}

function enumDescriptor(e: protobuf.Enum): object {
  return { name: e.name, value: Object.entries(e.values).map(([name, number]) => ({ name, number })) };
}

function serviceDescriptor(service: protobuf.Service, depend: Depend): object {
  return {
    name: service.name,
    method: service.methodsArray.map((method) => {
      method.resolve();
      const input = method.resolvedRequestType;
      const output = method.resolvedResponseType;
      if (input === null || output === null) throw new Error(`unresolved types of ${method.fullName}`);
      depend(input);
      depend(output);
      return {
        name: method.name,
        inputType: qualified(input),
        outputType: qualified(output),
        clientStreaming: method.requestStream === true,
        serverStreaming: method.responseStream === true,
      };
    }),
  };
}

/** protoc's name for a map field's entry type: "order_items" → "OrderItemsEntry". */
function mapEntryName(field: string): string {
  const camel = field.replace(/_([a-z0-9])/g, (_m, c: string) => c.toUpperCase());
  return `${camel.charAt(0).toUpperCase()}${camel.slice(1)}Entry`;
}

/** ".pkg.Outer.Inner": descriptors always use fully qualified names. */
function qualified(object: protobuf.ReflectionObject): string {
  return object.fullName.startsWith(".") ? object.fullName : `.${object.fullName}`;
}

/** The package of a top-level definition: the full name of the namespace around it. */
function packageOf(object: protobuf.ReflectionObject): string {
  let parent = object.parent;
  while (parent !== null && (parent instanceof protobuf.Type || parent instanceof protobuf.Service))
    parent = parent.parent;
  return parent === null ? "" : parent.fullName.replace(/^\./, "");
}

function syntaxOf(object: protobuf.ReflectionObject): string {
  const edition = (object as unknown as { _edition?: string })._edition;
  return edition === "proto2" ? "proto2" : "proto3";
}

/**
 * protobufjs bundles the well-known types without a file name; they keep the names every
 * protobuf runtime knows them by.
 */
function wellKnownFile(object: protobuf.ReflectionObject): string {
  let top = object;
  while (
    top.parent !== null &&
    (top.parent instanceof protobuf.Type || top.parent instanceof protobuf.Service)
  )
    top = top.parent;
  // Everything else in google.protobuf that protobufjs bundles comes from descriptor.proto.
  const file = WELL_KNOWN[top.name] ?? "descriptor";
  if (top.parent?.fullName !== ".google.protobuf") {
    throw new Error(`cannot tell which .proto file declares ${object.fullName}`);
  }
  return `google/protobuf/${file}.proto`;
}

const WELL_KNOWN: Readonly<Record<string, string>> = (() => {
  const files: Record<string, readonly string[]> = {
    any: ["Any"],
    api: ["Api", "Method", "Mixin"],
    duration: ["Duration"],
    empty: ["Empty"],
    field_mask: ["FieldMask"],
    source_context: ["SourceContext"],
    struct: ["Struct", "Value", "ListValue", "NullValue"],
    timestamp: ["Timestamp"],
    type: ["Type", "Field", "Enum", "EnumValue", "Option", "Syntax"],
    wrappers: [
      "DoubleValue",
      "FloatValue",
      "Int64Value",
      "UInt64Value",
      "Int32Value",
      "UInt32Value",
      "BoolValue",
      "StringValue",
      "BytesValue",
    ],
  };
  const out: Record<string, string> = {};
  for (const [file, names] of Object.entries(files)) for (const name of names) out[name] = file;
  return out;
})();

/** The name a file is imported by ("examples/orders/v1/orders.proto"), from its loaded path. */
function importName(filename: string, searchPaths: readonly string[]): string {
  if (!path.isAbsolute(filename)) return filename;
  for (const dir of searchPaths) {
    const relative = path.relative(dir, filename);
    if (!relative.startsWith("..") && !path.isAbsolute(relative)) return relative.split(path.sep).join("/");
  }
  return path.basename(filename);
}

const LABEL_OPTIONAL = 1;
const LABEL_REQUIRED = 2;
const LABEL_REPEATED = 3;
const TYPE_MESSAGE = 11;
const TYPE_ENUM = 14;

const SCALAR: Readonly<Record<string, number>> = {
  double: 1,
  float: 2,
  int64: 3,
  uint64: 4,
  int32: 5,
  fixed64: 6,
  fixed32: 7,
  bool: 8,
  string: 9,
  bytes: 12,
  uint32: 13,
  sfixed32: 15,
  sfixed64: 16,
  sint32: 17,
  sint64: 18,
};
