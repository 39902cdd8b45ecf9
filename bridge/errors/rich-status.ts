import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import type { ErrorDetail } from "./bridge-error.js";

/**
 * The gRPC rich error model: a google.rpc.Status in the `grpc-status-details-bin`
 * trailer, with a google.rpc.ErrorInfo detail carrying the machine-readable reason
 * (S14). Encoded by hand from the field numbers of google/rpc/status.proto and
 * google/rpc/error_details.proto, so every gRPC language decodes it with its own types.
 */
export const ERROR_INFO_TYPE_URL = "type.googleapis.com/google.rpc.ErrorInfo";
export const ERROR_DOMAIN = "sessionbridge.dev";

export interface RichStatus {
  readonly code: number;
  readonly message: string;
  readonly details: readonly ErrorDetail[];
}

export interface ErrorInfo {
  readonly reason: string;
  readonly domain: string;
  readonly metadata: Readonly<Record<string, string>>;
}

export function encodeStatus(status: RichStatus): Uint8Array {
  const writer = new BinaryWriter();
  if (status.code !== 0) writer.uint32(8).int32(status.code);
  if (status.message !== "") writer.uint32(18).string(status.message);
  for (const detail of status.details) {
    writer.uint32(26).fork();
    writer.uint32(10).string(detail.typeUrl);
    writer.uint32(18).bytes(detail.value);
    writer.join();
  }
  return writer.finish();
}

export function decodeStatus(bytes: Uint8Array): RichStatus {
  const reader = new BinaryReader(bytes);
  let code = 0;
  let message = "";
  const details: ErrorDetail[] = [];
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === 0) code = reader.int32();
    else if (field === 2 && wireType === 2) message = reader.string();
    else if (field === 3 && wireType === 2) details.push(decodeAny(reader.bytes()));
    else reader.skip(wireType);
  }
  return { code, message, details };
}

export function encodeErrorInfo(info: ErrorInfo): ErrorDetail {
  const writer = new BinaryWriter();
  if (info.reason !== "") writer.uint32(10).string(info.reason);
  if (info.domain !== "") writer.uint32(18).string(info.domain);
  for (const [key, value] of Object.entries(info.metadata)) {
    writer.uint32(26).fork().uint32(10).string(key).uint32(18).string(value).join();
  }
  return { typeUrl: ERROR_INFO_TYPE_URL, value: writer.finish() };
}

export function decodeErrorInfo(bytes: Uint8Array): ErrorInfo {
  const reader = new BinaryReader(bytes);
  let reason = "";
  let domain = "";
  const metadata: Record<string, string> = {};
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === 2) reason = reader.string();
    else if (field === 2 && wireType === 2) domain = reader.string();
    else if (field === 3 && wireType === 2) {
      const entry = new BinaryReader(reader.bytes());
      let key = "";
      let value = "";
      while (entry.pos < entry.len) {
        const [f, w] = entry.tag();
        if (f === 1 && w === 2) key = entry.string();
        else if (f === 2 && w === 2) value = entry.string();
        else entry.skip(w);
      }
      metadata[key] = value;
    } else reader.skip(wireType);
  }
  return { reason, domain, metadata };
}

function decodeAny(bytes: Uint8Array): ErrorDetail {
  const reader = new BinaryReader(bytes);
  let typeUrl = "";
  let value: Uint8Array = new Uint8Array(0);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === 2) typeUrl = reader.string();
    else if (field === 2 && wireType === 2) value = reader.bytes();
    else reader.skip(wireType);
  }
  return { typeUrl, value };
}
