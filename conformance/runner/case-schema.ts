import { z } from "zod";

/** The session rules of docs/sessions.md that a case or one of its checks names. */
export const RULES = [
  "S1",
  "S2",
  "S3",
  "S4",
  "S5",
  "S6",
  "S7",
  "S8",
  "S9",
  "S10",
  "S11",
  "S12",
  "S13",
  "S14",
  "S15",
] as const;
export type Rule = (typeof RULES)[number];

export const MODES = ["direct", "bridged"] as const;
export type Mode = (typeof MODES)[number];

/**
 * What a target may declare. `pipelining`: exclusive calls of one session sent back to back
 * without waiting for answers are applied in the order they arrived (S6); a service that
 * only promises not to interleave them leaves it out, and those cases are skipped.
 */
/** `nats_streams`: the service serves server streams over NATS in the framing of docs/nats.md. */
export const FEATURES = [
  "streaming",
  "sequential",
  "single",
  "durable",
  "expiry",
  "pipelining",
  "nats_streams",
] as const;
export type Feature = (typeof FEATURES)[number];

/** gRPC code names in google.rpc.Code numbering (S14). */
export const CODE_NAMES = [
  "OK",
  "CANCELLED",
  "UNKNOWN",
  "INVALID_ARGUMENT",
  "DEADLINE_EXCEEDED",
  "NOT_FOUND",
  "ALREADY_EXISTS",
  "PERMISSION_DENIED",
  "RESOURCE_EXHAUSTED",
  "FAILED_PRECONDITION",
  "ABORTED",
  "OUT_OF_RANGE",
  "UNIMPLEMENTED",
  "INTERNAL",
  "UNAVAILABLE",
  "DATA_LOSS",
  "UNAUTHENTICATED",
] as const;

const rule = z.enum(RULES);
const rules = z.array(rule).min(1);
const jsonObject = z.record(z.string(), z.unknown());

const headerExpectation = z.union([z.string(), z.strictObject({ $present: z.boolean() })]);
export type HeaderExpectation = z.infer<typeof headerExpectation>;

/** What a call must answer; every field is optional and compared as a subset. */
const expectSchema = z.strictObject({
  code: z.union([z.enum(CODE_NAMES), z.number().int().min(0).max(16)]).optional(),
  /** ErrorInfo reason; a list accepts any of its entries (a bridge and a service may word it apart). */
  reason: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
  /** The fault message byte for byte (S14). */
  message: z.string().optional(),
  /** Detail type URLs that must be present, in order (S14). */
  details: z.array(z.string()).optional(),
  /** ErrorInfo metadata that must be present (for example `expected_seq`). */
  reason_metadata: z.record(z.string(), z.string()).optional(),
  /** A subset of the reply in proto3 JSON (lowerCamelCase names, defaults omitted). */
  reply: jsonObject.optional(),
  /** Header values byte for byte, or `{$present: false}` for a header that must not be sent. */
  headers: z.record(z.string(), headerExpectation).optional(),
  /** Trailers likewise; a trailer may also arrive among the headers (NATS has no trailers). */
  trailers: z.record(z.string(), headerExpectation).optional(),
  /** Number of stream items. */
  items: z.number().int().min(0).optional(),
  /** A subset each stream item must match. */
  item: jsonObject.optional(),
});
export type Expect = z.infer<typeof expectSchema>;

const callSchema = z.strictObject({
  /** `Service.Method` of the lab contract, for example `LabService.Open`. */
  call: z
    .string()
    .regex(
      /^(LabService|SequentialLabService|SingleLabService|PingLabService)\.[A-Z]\w*$/,
      "Service.Method of lab.proto",
    ),
  /** The request in proto3 JSON; `{$bytes: N}` stands for N bytes of payload. */
  request: jsonObject.default({}),
  /**
   * How the call names its session: `$name` (the session bound by an earlier step),
   * `unknown` (an id nobody issued), `none` (no id: correlation values or nothing).
   * Absent: by correlation values when the request has them.
   */
  session: z
    .string()
    .regex(/^(\$[A-Za-z_][\w]*|unknown|none)$/)
    .optional(),
  seq: z.number().int().min(0).optional(),
  idempotency_key: z.string().optional(),
  metadata: z.record(z.string(), z.string()).optional(),
  /** The deadline as a grpc-timeout value: digits and one of H M S m u n (S15). */
  deadline: z
    .string()
    .regex(/^\d{1,8}[HMSmun]$/, "a grpc-timeout value such as 250m")
    .optional(),
  /** Cancels the call this many milliseconds after it was sent (S15). */
  cancel_after_ms: z.number().int().min(0).optional(),
  /** Direct mode: resend an earlier step's message id (`$name`), as a redelivering bridge does (S10). */
  message_id: z
    .string()
    .regex(/^\$[A-Za-z_]\w*$/)
    .optional(),
  /** Binds the outcome to a name for later steps. */
  as: z
    .string()
    .regex(/^[A-Za-z_]\w*$/)
    .optional(),
  expect: expectSchema.optional(),
  /** Overrides merged over `expect` in one mode. */
  expect_direct: expectSchema.optional(),
  expect_bridged: expectSchema.optional(),
  /** Repeats the call until its expectation holds, up to this long (work that happens later, S9, S11). */
  eventually_ms: z.number().int().min(1).max(60_000).optional(),
  /** The rules this step's checks belong to; the case's rules when absent. */
  rules: rules.optional(),
  /** Runs only in these modes. */
  modes: z.array(z.enum(MODES)).optional(),
});
export type CallStep = z.infer<typeof callSchema>;

const historySchema = z.strictObject({
  history: z.strictObject({
    session: z.string().regex(/^\$[A-Za-z_]\w*$/),
    /** Entries that must appear in this order (others may come between), as subsets. */
    entries: z.array(
      z.strictObject({
        kind: z.enum(["EVENT", "REQUEST", "RESPONSE", "ONE_WAY", "FAULT", "ACK"]),
        method: z.string().optional(),
        reason: z.string().optional(),
        message_id: z.string().optional(),
      }),
    ),
    /** Polls the journal until the entries are there, up to this long. */
    eventually_ms: z.number().int().min(1).max(60_000).optional(),
  }),
  rules: rules.optional(),
});

const stepSchema = z.union([
  callSchema,
  z.strictObject({ parallel: z.array(callSchema).min(2), rules: rules.optional() }),
  z.strictObject({
    /** Calls sent one after another without waiting for answers (pipelined senders). */
    pipeline: z.array(callSchema).min(2),
    /**
     * Each call leaves as soon as the one before it is handed to the transport, with no
     * pause, where the transport keeps the order of sends on one connection (gRPC: HTTP/2
     * streams open in order; NATS). The receiver then reads them back to back, as a busy
     * client sends them. Over HTTP/1.1 the calls may take separate connections, so there
     * they leave as in any pipeline.
     */
    back_to_back: z.boolean().optional(),
    rules: rules.optional(),
  }),
  z.strictObject({ kill: z.enum(["service", "bridge"]), rules: rules.optional() }),
  /** Waits this long in contract time: multiplied by the time scale (S12). */
  z.strictObject({ sleep_scaled_ms: z.number().int().min(1) }),
  z.strictObject({ sleep_ms: z.number().int().min(1).max(60_000) }),
  historySchema,
]);
export type Step = z.infer<typeof stepSchema>;

export const caseSchema = z.strictObject({
  id: z.string().regex(/^[a-z0-9-]+\/[a-z0-9-]+$/, "category/name in kebab-case"),
  description: z.string().min(1),
  rules,
  side: z.enum(["service", "bridge", "client"]),
  modes: z.array(z.enum(MODES)).min(1).optional(),
  requires: z.array(z.enum(FEATURES)).default([]),
  /** Runs only against targets that do NOT declare these features: absence must be observable. */
  requires_absent: z.array(z.enum(FEATURES)).default([]),
  /** Runs alone in its environment (kills, SEQUENTIAL and SINGLE services, expiry). */
  exclusive: z.boolean().default(false),
  steps: z.array(stepSchema).min(1),
});
export type CaseFile = z.infer<typeof caseSchema>;

/** A loaded case: the file's content plus where it came from and its resolved modes. */
export interface ConformanceCase extends CaseFile {
  readonly file: string;
  readonly resolvedModes: readonly Mode[];
}
