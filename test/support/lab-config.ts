import { writeFileSync } from "node:fs";
import path from "node:path";
import { LAB_PROTO_DIR } from "./lab-process.js";

export const LAB_SERVICES = [
  "test.lab.v1.Counter",
  "test.lab.v1.Unique",
  "test.lab.v1.Line",
  "test.lab.v1.Solo",
  "test.lab.v1.Plain",
] as const;

/** Writes <dir>/sessionbridge.yaml for the lab contracts served by the lab process on `port`; returns its path. */
export function writeLabConfig(dir: string, port: number, extraLines: readonly string[] = []): string {
  const file = path.join(dir, "sessionbridge.yaml");
  writeFileSync(
    file,
    [
      "contracts:",
      `  importPaths: [${JSON.stringify(LAB_PROTO_DIR)}]`,
      "  files: [test/lab/v1/lab.proto]",
      "processes:",
      "  - name: lab",
      `    services: [${LAB_SERVICES.join(", ")}]`,
      `    location: grpc://127.0.0.1:${port}`,
      ...extraLines,
    ].join("\n"),
  );
  return file;
}
