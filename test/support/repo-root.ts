import path from "node:path";
import { packageRoot } from "../../bridge/util/package-root.js";

/** Tests run compiled from dist/test/ but read their fixtures from the source tree. */
export const repoRoot = packageRoot;

/** A path under test/fixtures in the source tree. */
export function fixturePath(...segments: string[]): string {
  return path.join(repoRoot(), "test", "fixtures", ...segments);
}
