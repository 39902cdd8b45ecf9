import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The repository root, found upwards from this module: the bench runs compiled from
 * dist/bench/ but reads its contract and config from the source tree and writes its
 * results there.
 */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, "package.json"))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error("repository root not found");
    dir = parent;
  }
  return dir;
}

export const benchDir = (): string => path.join(repoRoot(), "bench");
export const benchConfigFile = (): string => path.join(benchDir(), "sessionbridge.yaml");
export const benchProtoDir = (): string => path.join(benchDir(), "proto");
export const resultsDir = (): string => path.join(benchDir(), "results");

/** A compiled sibling module of this one (children are started from dist/bench/). */
export function benchModule(name: string): string {
  return path.join(path.dirname(fileURLToPath(import.meta.url)), name);
}

export const ECHO_SERVICE = "bench.v1.Echo";
export const OPEN_PATH = `/${ECHO_SERVICE}/Open`;
export const CALL_PATH = `/${ECHO_SERVICE}/Call`;
