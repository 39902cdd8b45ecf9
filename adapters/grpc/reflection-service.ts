import { fromBinary } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import {
  type DescriptorProto,
  type FieldDescriptorProto,
  FileDescriptorProtoSchema,
} from "@bufbuild/protobuf/wkt";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import type { GrpcHandler } from "./h2-server.js";

/**
 * gRPC server reflection, grpc.reflection.v1 and v1alpha (the same messages under two
 * packages; grpcurl and other tools try either), over the served file descriptors. The
 * request and response messages are encoded here by field number
 * (grpc/reflection/v1/reflection.proto).
 */
export function reflectionHandlers(
  files: readonly Buffer[],
  services: readonly string[],
): Map<string, GrpcHandler> {
  const index = new DescriptorIndex(files);
  const handler: GrpcHandler = (call) =>
    void (async () => {
      try {
        for await (const request of call.messages()) await call.write(answer(index, services, request));
        call.end({});
      } catch (error) {
        call.fail(BridgeError.from(error));
      }
    })();
  return new Map([
    ["/grpc.reflection.v1.ServerReflection/ServerReflectionInfo", handler],
    ["/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", handler],
  ]);
}

/** Which file declares each symbol and extension, and what each file depends on. */
class DescriptorIndex {
  readonly #bytes = new Map<string, Buffer>();
  readonly #deps = new Map<string, readonly string[]>();
  readonly #symbols = new Map<string, string>();
  readonly #extensions = new Map<string, Map<number, string>>();

  constructor(files: readonly Buffer[]) {
    for (const bytes of files) {
      const file = fromBinary(FileDescriptorProtoSchema, bytes);
      const name = file.name;
      // The first file of a name wins, as in the server's own list.
      if (this.#bytes.has(name)) continue;
      this.#bytes.set(name, bytes);
      this.#deps.set(name, file.dependency);
      const prefix = file.package ? `${file.package}.` : "";
      for (const e of file.enumType) this.#symbols.set(`${prefix}${e.name}`, name);
      for (const s of file.service) {
        this.#symbols.set(`${prefix}${s.name}`, name);
        for (const m of s.method) this.#symbols.set(`${prefix}${s.name}.${m.name}`, name);
      }
      for (const m of file.messageType) this.#message(m, prefix, name);
      this.#extend(file.extension, name);
    }
  }

  #message(m: DescriptorProto, prefix: string, file: string): void {
    const full = `${prefix}${m.name}`;
    this.#symbols.set(full, file);
    for (const e of m.enumType) this.#symbols.set(`${full}.${e.name}`, file);
    for (const nested of m.nestedType) this.#message(nested, `${full}.`, file);
    this.#extend(m.extension, file);
  }

  #extend(extensions: readonly FieldDescriptorProto[], file: string): void {
    for (const ext of extensions) {
      const extendee = ext.extendee.replace(/^\./, "");
      const numbers = this.#extensions.get(extendee) ?? new Map<number, string>();
      numbers.set(ext.number, file);
      this.#extensions.set(extendee, numbers);
    }
  }

  fileOfSymbol(symbol: string): string | undefined {
    return this.#symbols.get(symbol.replace(/^\./, ""));
  }

  fileOfExtension(type: string, number: number): string | undefined {
    return this.#extensions.get(type.replace(/^\./, ""))?.get(number);
  }

  extensionNumbers(type: string): number[] | undefined {
    const numbers = this.#extensions.get(type.replace(/^\./, ""));
    if (numbers !== undefined) return [...numbers.keys()];
    return this.#symbols.has(type.replace(/^\./, "")) ? [] : undefined;
  }

  /** The file and everything it imports, transitively, the file first. */
  withDependencies(file: string): Buffer[] | undefined {
    if (!this.#bytes.has(file)) return undefined;
    const seen = new Set<string>();
    const visit = (name: string): void => {
      if (seen.has(name) || !this.#bytes.has(name)) return;
      seen.add(name);
      for (const dep of this.#deps.get(name) ?? []) visit(dep);
    };
    visit(file);
    return [...seen].map((name) => this.#bytes.get(name) as Buffer);
  }
}

interface ReflectionRequest {
  host: string;
  fileByFilename?: string;
  fileContainingSymbol?: string;
  fileContainingExtension?: { containingType: string; extensionNumber: number };
  allExtensionNumbersOfType?: string;
  listServices?: string;
}

function answer(index: DescriptorIndex, services: readonly string[], raw: Buffer): Uint8Array {
  const request = decodeRequest(raw);
  const writer = new BinaryWriter();
  if (request.host !== "") writer.uint32(10).string(request.host);
  writer.uint32(18).bytes(raw);
  const files = (found: Buffer[] | undefined, what: string): void => {
    if (found === undefined) {
      notFound(writer, what);
      return;
    }
    writer.uint32(34).fork();
    for (const file of found) writer.uint32(10).bytes(file);
    writer.join();
  };
  if (request.fileByFilename !== undefined) {
    files(index.withDependencies(request.fileByFilename), `file ${request.fileByFilename}`);
  } else if (request.fileContainingSymbol !== undefined) {
    const file = index.fileOfSymbol(request.fileContainingSymbol);
    files(
      file === undefined ? undefined : index.withDependencies(file),
      `symbol ${request.fileContainingSymbol}`,
    );
  } else if (request.fileContainingExtension !== undefined) {
    const { containingType, extensionNumber } = request.fileContainingExtension;
    const file = index.fileOfExtension(containingType, extensionNumber);
    files(
      file === undefined ? undefined : index.withDependencies(file),
      `extension ${extensionNumber} of ${containingType}`,
    );
  } else if (request.allExtensionNumbersOfType !== undefined) {
    const numbers = index.extensionNumbers(request.allExtensionNumbersOfType);
    if (numbers === undefined) notFound(writer, `type ${request.allExtensionNumbersOfType}`);
    else {
      writer.uint32(42).fork().uint32(10).string(request.allExtensionNumbersOfType);
      for (const n of numbers) writer.uint32(16).int32(n);
      writer.join();
    }
  } else if (request.listServices !== undefined) {
    writer.uint32(50).fork();
    for (const name of services) writer.uint32(10).fork().uint32(10).string(name).join();
    writer.join();
  } else {
    writer
      .uint32(58)
      .fork()
      .uint32(8)
      .int32(Code.INVALID_ARGUMENT)
      .uint32(18)
      .string("empty reflection request")
      .join();
  }
  return writer.finish();
}

function notFound(writer: BinaryWriter, what: string): void {
  writer.uint32(58).fork().uint32(8).int32(Code.NOT_FOUND).uint32(18).string(`${what} not found`).join();
}

function decodeRequest(bytes: Uint8Array): ReflectionRequest {
  const reader = new BinaryReader(bytes);
  const request: ReflectionRequest = { host: "" };
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (wireType !== 2) {
      reader.skip(wireType);
      continue;
    }
    switch (field) {
      case 1:
        request.host = reader.string();
        break;
      case 3:
        request.fileByFilename = reader.string();
        break;
      case 4:
        request.fileContainingSymbol = reader.string();
        break;
      case 5: {
        const inner = new BinaryReader(reader.bytes());
        const ext = { containingType: "", extensionNumber: 0 };
        while (inner.pos < inner.len) {
          const [f, w] = inner.tag();
          if (f === 1 && w === 2) ext.containingType = inner.string();
          else if (f === 2 && w === 0) ext.extensionNumber = inner.int32();
          else inner.skip(w);
        }
        request.fileContainingExtension = ext;
        break;
      }
      case 6:
        request.allExtensionNumbersOfType = reader.string();
        break;
      case 7:
        request.listServices = reader.string();
        break;
      default:
        reader.skip(wireType);
    }
  }
  return request;
}
