import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { parse } from "yaml";
import type { z } from "zod";
import { type CaseFile, type ConformanceCase, caseSchema, type Mode, type Step } from "./case-schema.js";

/** A case file that does not validate: names the file and the field. */
export class CaseLoadError extends Error {
  override readonly name = "CaseLoadError";
}

/** Every `<category>/<name>.yaml` under `dir`, validated, sorted by id. */
export function loadCases(dir: string): ConformanceCase[] {
  const cases: ConformanceCase[] = [];
  const ids = new Set<string>();
  for (const category of readdirSync(dir, { withFileTypes: true })) {
    if (!category.isDirectory()) continue;
    for (const entry of readdirSync(path.join(dir, category.name))) {
      if (!entry.endsWith(".yaml")) continue;
      const file = path.join(dir, category.name, entry);
      const loaded = loadCaseFile(file, `${category.name}/${entry.slice(0, -".yaml".length)}`);
      if (ids.has(loaded.id)) throw new CaseLoadError(`${file}: id: ${loaded.id} is used twice`);
      ids.add(loaded.id);
      cases.push(loaded);
    }
  }
  return cases.sort((a, b) => a.id.localeCompare(b.id));
}

export function loadCaseFile(file: string, expectedId: string): ConformanceCase {
  let raw: unknown;
  try {
    raw = parse(readFileSync(file, "utf8"));
  } catch (error) {
    throw new CaseLoadError(`${file}: not YAML: ${error instanceof Error ? error.message : String(error)}`);
  }
  const parsed = caseSchema.safeParse(raw);
  if (!parsed.success) throw new CaseLoadError(`${file}: ${describeIssues(parsed.error)}`);
  const value = parsed.data;
  if (value.id !== expectedId) {
    throw new CaseLoadError(
      `${file}: id: must be ${JSON.stringify(expectedId)} (its path), got ${JSON.stringify(value.id)}`,
    );
  }
  checkBindings(file, value);
  const bridgeOnly = value.side !== "service";
  const resolvedModes: Mode[] = value.modes ?? (bridgeOnly ? ["bridged"] : ["direct", "bridged"]);
  if (bridgeOnly && resolvedModes.includes("direct")) {
    throw new CaseLoadError(`${file}: modes: a ${value.side}-side case runs bridged only`);
  }
  return { ...value, exclusive: value.exclusive || needsIsolation(value), file, resolvedModes };
}

/** `path.to.field: message` for each zod issue. */
function describeIssues(error: z.ZodError): string {
  return error.issues
    .map((issue) => `${issue.path.length === 0 ? "(top)" : issue.path.join(".")}: ${issue.message}`)
    .join("; ");
}

/** Every `$name` a step uses must be bound by an earlier step. */
function checkBindings(file: string, value: CaseFile): void {
  const bound = new Set<string>();
  const use = (where: string, ref: string | undefined) => {
    if (ref === undefined || !ref.startsWith("$")) return;
    const name = ref.slice(1).split(".")[0] ?? "";
    if (!bound.has(name))
      throw new CaseLoadError(`${file}: ${where}: ${ref} is not bound by an earlier step`);
  };
  value.steps.forEach((step, i) => {
    const calls =
      "call" in step ? [step] : "parallel" in step ? step.parallel : "pipeline" in step ? step.pipeline : [];
    for (const call of calls) {
      use(`steps.${i}.session`, call.session);
      use(`steps.${i}.message_id`, call.message_id);
    }
    if ("history" in step) use(`steps.${i}.history.session`, step.history.session);
    for (const call of calls) if (call.as !== undefined) bound.add(call.as);
  });
}

/** Kills, SEQUENTIAL and SINGLE services and expiry touch state other cases share. */
function needsIsolation(value: CaseFile): boolean {
  if (value.requires.includes("expiry")) return true;
  const touches = (step: Step): boolean => {
    if ("kill" in step) return true;
    const calls =
      "call" in step ? [step] : "parallel" in step ? step.parallel : "pipeline" in step ? step.pipeline : [];
    // PingLabService keeps no state (sessionless), so it shares an environment safely.
    return calls.some((c) => !c.call.startsWith("LabService.") && !c.call.startsWith("PingLabService."));
  };
  return value.steps.some(touches);
}
