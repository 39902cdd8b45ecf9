import { readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import { z } from "zod";
import { FEATURES, RULES } from "./case-schema.js";

const targetSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/, "lower-case letters, digits, '.', '_', '-'"),
  language: z.string().min(1),
  /** argv, relative to the repository root. */
  command: z.array(z.string().min(1)).min(1),
  /** A script run before use when the command's program is absent. */
  build: z.string().optional(),
  transports: z.array(z.enum(["grpc", "http", "nats"])).min(1),
  features: z.array(z.enum(FEATURES)).default([]),
  expect: z.enum(["pass", "fail"]).default("pass"),
  /** The rules a faulty service breaks: the suite must blame exactly these. */
  breaks: z.array(z.enum(RULES)).default([]),
});

export type TargetFile = z.infer<typeof targetSchema> & { readonly file: string };

export function loadTarget(file: string): TargetFile {
  let raw: unknown;
  try {
    raw = parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new Error(`${file}: ${error instanceof Error ? error.message : String(error)}`);
  }
  const parsed = targetSchema.safeParse(raw);
  if (!parsed.success) {
    throw new Error(
      `${file}: ${parsed.error.issues.map((i) => `${i.path.join(".") || "(top)"}: ${i.message}`).join("; ")}`,
    );
  }
  if (parsed.data.expect === "fail" && parsed.data.breaks.length === 0) {
    throw new Error(`${file}: breaks: a target with expect: fail names the rules it breaks`);
  }
  return { ...parsed.data, file: path.resolve(file) };
}

/**
 * Entries of conformance/known-failing/<target>.txt: one case id per line, optionally
 * followed by the permutations it fails in (`direct grpc`, `bridged http→nats`, `*` for
 * any part); `#` starts a comment.
 */
export interface KnownFailing {
  has(caseId: string, permutation?: string): boolean;
}

export function loadKnownFailing(root: string, target: string): KnownFailing {
  const file = path.join(root, "conformance/known-failing", `${target}.txt`);
  let text = "";
  try {
    text = readFileSync(file, "utf8");
  } catch {
    // no list: nothing is known to fail
  }
  return parseKnownFailing(text);
}

export function parseKnownFailing(text: string): KnownFailing {
  const entries = text
    .split("\n")
    .map((line) => line.replace(/#.*/, "").trim())
    .filter((line) => line !== "")
    .map((line) => {
      const [id = "", ...rest] = line.split(/\s+/);
      const where = rest.join(" ");
      const pattern =
        where === ""
          ? undefined
          : new RegExp(`^${where.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, "[^ →]+")}$`);
      return { id, pattern };
    });
  return {
    has(caseId, permutation) {
      return entries.some(
        (e) =>
          e.id === caseId &&
          (e.pattern === undefined || (permutation !== undefined && e.pattern.test(permutation))),
      );
    },
  };
}
