import { Metadata as GrpcMetadata } from "@grpc/grpc-js";
import type { Metadata } from "../../bridge/call/metadata.js";

/** grpc-js metadata to the internal form: "-bin" values become base64 text. */
export function fromGrpcMetadata(metadata: GrpcMetadata): Metadata {
  const out: Record<string, string[]> = {};
  for (const [key, values] of Object.entries(metadata.toJSON())) {
    out[key] = values.map((v) => (typeof v === "string" ? v : Buffer.from(v).toString("base64")));
  }
  return out;
}

/** The internal form to grpc-js metadata, plus single-valued extras (which win). */
export function toGrpcMetadata(metadata: Metadata, extra?: Readonly<Record<string, string>>): GrpcMetadata {
  const out = new GrpcMetadata();
  for (const [key, values] of Object.entries(metadata)) {
    if (extra !== undefined && key in extra) continue;
    for (const value of values) add(out, key, value);
  }
  if (extra !== undefined) for (const [key, value] of Object.entries(extra)) add(out, key, value);
  return out;
}

function add(out: GrpcMetadata, key: string, value: string): void {
  if (key.endsWith("-bin")) out.add(key, Buffer.from(value, "base64"));
  else out.add(key, value);
}
