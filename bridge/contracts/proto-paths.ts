import { existsSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { packageRoot } from "../util/package-root.js";

/** The file every sessionful contract imports; always loaded so its option types can be looked up. */
export const OPTIONS_PROTO = "sessionbridge/v1/options.proto";

/** The bridge's own proto/ directory, shipped in the package beside dist/. */
export function bridgeProtoDir(): string {
  const dir = path.join(packageRoot(), "proto");
  if (!existsSync(path.join(dir, OPTIONS_PROTO)))
    throw new Error(`the bridge's proto/ directory is missing: ${dir}`);
  return dir;
}

/**
 * The installed protobufjs package: it ships google/protobuf/descriptor.proto, which
 * options.proto imports. The common well-known types (empty, timestamp, any, …) are
 * bundled inside protobufjs and never reach the file system.
 */
export function protobufjsDir(): string {
  const require = createRequire(import.meta.url);
  return path.dirname(require.resolve("protobufjs/package.json"));
}

/** The import paths searched, in order: the configured ones, then the bridge's, then protobufjs's. */
export function searchPaths(importPaths: readonly string[]): readonly string[] {
  return [...importPaths.map((p) => path.resolve(p)), bridgeProtoDir(), protobufjsDir()];
}

/** The first import path holding `file` (relative), as an absolute path; undefined if none does. */
export function findInPaths(paths: readonly string[], file: string): string | undefined {
  for (const dir of paths) {
    const candidate = path.join(dir, file);
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}
