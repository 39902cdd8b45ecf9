import type { DescFile, DescMethod, DescService } from "@bufbuild/protobuf";
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";

/** A 1-based place in a .proto file. */
export interface SourcePosition {
  readonly line: number;
  readonly column: number;
}

// Field numbers in descriptor.proto: FileDescriptorProto.service, ServiceDescriptorProto
// .method and .options, MethodDescriptorProto.options, FileDescriptorProto.source_code_info.
const FILE_SERVICE = 6;
const SERVICE_METHOD = 2;
const SERVICE_OPTIONS = 3;
const METHOD_OPTIONS = 4;
const FILE_SOURCE_CODE_INFO = 9;

/**
 * Where the sessionbridge option of a service or method is written (the first
 * `option (…)` line for it), else where the service or method is declared; undefined
 * without source info. Problems found in the options point there.
 */
export function optionPosition(
  element: DescService | DescMethod,
  extensionNumber: number,
): SourcePosition | undefined {
  const service = element.kind === "service" ? element : element.parent;
  const file = service.file;
  const declared = [FILE_SERVICE, file.services.indexOf(service)];
  if (element.kind === "rpc") declared.push(SERVICE_METHOD, service.methods.indexOf(element));
  const options = element.kind === "service" ? SERVICE_OPTIONS : METHOD_OPTIONS;
  return positionOf(file, [...declared, options, extensionNumber]) ?? positionOf(file, declared);
}

/** The earliest location whose path starts with `prefix`. */
function positionOf(file: DescFile, prefix: readonly number[]): SourcePosition | undefined {
  let best: SourcePosition | undefined;
  for (const location of file.proto.sourceCodeInfo?.location ?? []) {
    if (location.path.length < prefix.length || prefix.some((n, i) => location.path[i] !== n)) continue;
    const [line, column] = location.span;
    if (line === undefined || column === undefined) continue;
    if (best === undefined || line + 1 < best.line || (line + 1 === best.line && column + 1 < best.column)) {
      best = { line: line + 1, column: column + 1 };
    }
  }
  return best;
}

/**
 * An encoded FileDescriptorProto without its source_code_info, copied field by field
 * without decoding the rest: source info locates problems at load, clients of reflection
 * do not need it.
 */
export function withoutSourceInfo(file: Uint8Array): Uint8Array {
  const reader = new BinaryReader(file);
  const writer = new BinaryWriter();
  let kept = 0;
  while (reader.pos < reader.len) {
    const start = reader.pos;
    const [field, wireType] = reader.tag();
    reader.skip(wireType, field);
    if (field === FILE_SOURCE_CODE_INFO) continue;
    writer.raw(file.subarray(start, reader.pos));
    kept += reader.pos - start;
  }
  return kept === file.byteLength ? file : writer.finish();
}
