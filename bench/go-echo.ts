import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { existsSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { benchDir, repoRoot } from "./bench-paths.js";

const TOOLS_BIN = (): string => path.join(repoRoot(), ".tools", "bin");

/**
 * Builds a Go echo server (bench/go/echo on grpc-go, bench/go/connect-echo on connect-go,
 * each with its dependencies pinned in its go.mod, fetched
 * through the Go module proxy) into .tools/bin, unless the binary there was built from the
 * same sources: a stamp file holds a hash of go.mod, go.sum and the .go files, as
 * scripts/install-tools.sh does for the test tools. Returns the binary's path.
 */
export function buildGoEcho(source = "echo", name = "sb-bench-echo-go"): string {
  const dir = path.join(benchDir(), "go", source);
  const files = [
    "go.mod",
    "go.sum",
    ...readdirSync(dir)
      .filter((f) => f.endsWith(".go"))
      .sort(),
  ];
  const hash = createHash("sha256");
  for (const file of files) hash.update(readFileSync(path.join(dir, file)));
  const stamp = hash.digest("hex");
  const binary = path.join(TOOLS_BIN(), name);
  const stampFile = `${binary}.version`;
  const built = existsSync(stampFile) ? readFileSync(stampFile, "utf8").trim() : "";
  if (built === stamp && existsSync(binary)) return binary;
  mkdirSync(TOOLS_BIN(), { recursive: true });
  process.stderr.write(`bench: building ${name} from bench/go/${source}\n`);
  execFileSync("go", ["build", "-trimpath", "-o", binary, "."], { cwd: dir, stdio: "inherit" });
  writeFileSync(stampFile, `${stamp}\n`);
  return binary;
}
