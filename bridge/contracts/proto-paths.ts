import { existsSync, statSync } from "node:fs";
import path from "node:path";
import { packageRoot } from "../util/package-root.js";

/** The file every sessionful contract imports; always compiled so its option types can be looked up. */
export const OPTIONS_PROTO = "sessionbridge/v1/options.proto";

/** The bridge's own proto/ directory, shipped in the package beside dist/. */
export function bridgeProtoDir(): string {
  const dir = path.join(packageRoot(), "proto");
  if (!existsSync(path.join(dir, OPTIONS_PROTO)))
    throw new Error(`the bridge's proto/ directory is missing: ${dir}`);
  return dir;
}

/**
 * The import paths searched, in order, as protoc's -I: the configured ones, then the
 * bridge's own. google/protobuf/*.proto come from the compiler itself.
 */
export function searchPaths(importPaths: readonly string[]): readonly string[] {
  return [...importPaths.map((p) => path.resolve(p)), bridgeProtoDir()];
}

/** The first import path holding `file` (relative), as an absolute path; undefined if none does. */
export function findInPaths(paths: readonly string[], file: string): string | undefined {
  for (const dir of paths) {
    const candidate = path.join(dir, file);
    if (existsSync(candidate) && statSync(candidate).isFile()) return candidate;
  }
  return undefined;
}

/** Files the compiler provides itself: the well-known types and descriptor.proto. */
export function isCompilerProvided(file: string): boolean {
  return file.startsWith("google/protobuf/");
}
