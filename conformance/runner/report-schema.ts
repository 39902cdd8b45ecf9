import { z } from "zod";
import { RULES } from "./case-schema.js";

const permutation = z.strictObject({
  mode: z.enum(["direct", "bridged"]),
  inbound: z.enum(["grpc", "http", "nats"]),
  outbound: z.enum(["grpc", "http", "nats", "-"]),
});

/** The JSON report's shape, for consumers that check it before reading it. */
export const reportSchema = z.strictObject({
  summary: z.strictObject({
    target: z.string(),
    expect: z.enum(["pass", "fail"]),
    breaks: z.array(z.enum(RULES)),
    cases: z.number().int().min(0),
    permutations: z.array(z.string()),
    total: z.number().int().min(0),
    passed: z.number().int().min(0),
    failed: z.number().int().min(0),
    skipped: z.number().int().min(0),
    knownFailures: z.number().int().min(0),
    stale: z.number().int().min(0),
    skipReasons: z.record(z.string(), z.number().int().min(1)),
    blamedRules: z.array(z.enum(RULES)),
    durationMs: z.number().min(0),
    ok: z.boolean(),
    verdict: z.string(),
    seed: z.number().int(),
    sample: z.string().optional(),
  }),
  results: z.array(
    z.strictObject({
      caseId: z.string(),
      description: z.string(),
      side: z.enum(["service", "bridge", "client"]),
      permutation,
      status: z.enum(["pass", "fail", "skip", "known-failure", "stale"]),
      blamed: z.array(z.enum(RULES)),
      failure: z.string().optional(),
      skipReason: z.string().optional(),
      transcript: z.array(z.record(z.string(), z.unknown())),
      durationMs: z.number().min(0),
    }),
  ),
});
