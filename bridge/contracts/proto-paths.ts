import { existsSync, statSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The file every sessionful contract imports; always loaded so its option types can be looked up. */
export const OPTIONS_PROTO = "sessionbridge/v1/options.proto";

/**
 * The bridge's own proto/ directory. This module runs either compiled, from
 * dist/bridge/contracts/, or from source, bridge/contracts/; the package root is three or
 * two levels above its directory, so both are tried and the one that holds the options
 * file wins.
 */
export function bridgeProtoDir(): string {
  const here = path.dirname(fileURLToPath(import.meta.url));
  for (const up of ["../../..", "../.."]) {
    const candidate = path.resolve(here, up, "proto");
    if (existsSync(path.join(candidate, OPTIONS_PROTO))) return candidate;
  }
  throw new Error(`cannot find the bridge's proto/ directory (looked above ${here})`);
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
