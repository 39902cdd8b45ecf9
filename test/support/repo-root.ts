import { existsSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/**
 * The repository root, found upwards from this module: tests run compiled from
 * dist/test/… but read their fixtures from the source tree.
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

/** A path under test/fixtures in the source tree. */
export function fixturePath(...segments: string[]): string {
  return path.join(repoRoot(), "test", "fixtures", ...segments);
}
