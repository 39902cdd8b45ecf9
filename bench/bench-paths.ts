import path from "node:path";
import { fileURLToPath } from "node:url";
import { packageRoot } from "../bridge/util/package-root.js";

/** The bench runs compiled from dist/bench/ but reads its contract and config from the tree. */
export const repoRoot = packageRoot;

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
export const READ_PATH = `/${ECHO_SERVICE}/Read`;
export const PLAIN_CALL_PATH = "/bench.v1.Plain/Call";
