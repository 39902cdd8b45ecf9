import path from "node:path";
import * as z from "zod";
import { checkHttpListen, checkListenAddress, checkLocation, isNatsSubject } from "./addresses.js";
import { expectedGot } from "./config-error.js";

/** The error of a schema: "what is wrong (expected …, got …)", or a missing key. */
function says(what: string, expected: string) {
  return (issue: { readonly input?: unknown }): string =>
    issue.input === undefined
      ? `required key missing (expected ${expected})`
      : expectedGot(what, expected, issue.input);
}

function mapping<T extends z.core.$ZodLooseShape>(shape: T) {
  return z.strictObject(shape, {
    error: (issue) => (issue.code === "invalid_type" ? says("not a mapping", "a mapping")(issue) : undefined),
  });
}

function list<T extends z.ZodType>(item: T, expected: string) {
  return z.array(item, { error: says("not a list", expected) });
}

function text(expected: string, what = "not a string") {
  return z.string({ error: says(what, expected) });
}

/** A string that `check` accepts; check returns the whole message when it does not. */
function checked(expected: string, check: (value: string) => string | undefined) {
  return text(expected).check((ctx) => {
    const problem = check(ctx.value);
    if (problem !== undefined) ctx.issues.push({ code: "custom", message: problem, input: ctx.value });
  });
}

function matching(pattern: RegExp, what: string, expected: string) {
  return text(expected).regex(pattern, { error: says(what, expected) });
}

const positiveInteger = z
  .number({ error: says("not a number", "a positive integer") })
  .int({ error: says("not an integer", "a positive integer") })
  .positive({ error: says("not positive", "a positive integer") });

/** A replica's name: a NATS subject token and KV key token (several replicas, DESIGN §7). */
export const REPLICA_NAME = /^[A-Za-z0-9_-]{1,64}$/;
export const REPLICA_EXPECTED = "a replica name of 1-64 letters, digits, '_' and '-'";
/** Leases are renewed every quarter of the TTL: shorter ones would renew all the time. */
export const MIN_LEASE_TTL_MS = 500;
export const MAX_PARTITIONS = 4096;

/** A full service name, or a package followed by `.*`: every service of that package (not sub-packages). */
const SERVICE_NAME = /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)*(?:\.\*)?$/;
const PROCESS_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const COOKIE_NAME = /^[A-Za-z0-9_-]{1,64}$/;
const BIND_TARGET = /^[A-Za-z_][A-Za-z0-9_]{0,63}$/;

/** "memory", "sqlite" (the default path), "sqlite:PATH", "jetstream" or "jetstream:PREFIX". */
export function checkStore(value: string): string | undefined {
  if (value === "memory" || value === "sqlite" || value === "jetstream") return undefined;
  if (value.startsWith("sqlite:") && value.length > "sqlite:".length) return undefined;
  // The prefix names JetStream streams, KV buckets and subject tokens: only characters all three accept.
  if (/^jetstream:[A-Za-z0-9_-]+$/.test(value)) return undefined;
  return expectedGot("unknown store", STORE_EXPECTED, value);
}

const STORE_EXPECTED =
  '"memory", "sqlite:PATH" or "jetstream[:PREFIX]" (PREFIX: letters, digits, \'_\', \'-\')';

/** One or more nats:// or tls:// server URLs, comma-separated. */
export function checkNatsUrls(value: string): string | undefined {
  const expected = "nats://host:port, comma-separated for several";
  for (const part of value.split(",")) {
    const match = /^(nats|tls):\/\/(.+)$/.exec(part.trim());
    if (match === null) return expectedGot("not a NATS URL", expected, value);
    try {
      const url = new URL(part.trim());
      if (url.hostname === "" || (url.port !== "" && Number(url.port) < 1)) {
        return expectedGot("not a NATS URL", expected, value);
      }
    } catch {
      return expectedGot("not a NATS URL", expected, value);
    }
  }
  return undefined;
}

export const configFileSchema = mapping({
  contracts: mapping({
    importPaths: list(text("a directory path"), "a list of directories").optional(),
    files: list(
      checked("a .proto file relative to an import path", (value) =>
        path.isAbsolute(value) || value === ""
          ? expectedGot("not a relative path", "a .proto file relative to an import path", value)
          : undefined,
      ),
      "a list of .proto files",
    ).optional(),
  }).optional(),
  processes: list(
    mapping({
      name: matching(PROCESS_NAME, "invalid process name", "a name of letters, digits, '.', '_' and '-'"),
      services: list(
        matching(
          SERVICE_NAME,
          "invalid service name",
          "a full service name such as examples.orders.v1.Orders, or a package and .* such as examples.orders.v1.*",
        ),
        "a list of full service names or package.* patterns",
      ).min(1, { error: says("empty list", "at least one service") }),
      location: checked("a location URL", checkLocation),
      envelope: z.boolean({ error: says("not a boolean", "true or false") }).optional(),
    }),
    "a list of processes",
  ).optional(),
  listeners: mapping({
    grpc: checked("host:port", checkListenAddress).optional(),
    http: checked("host:port or off", checkHttpListen).optional(),
    httpTls: mapping({
      certFile: text("a certificate chain file path (PEM)"),
      keyFile: text("a private key file path (PEM)"),
    }).optional(),
    httpCookies: list(
      mapping({
        name: matching(COOKIE_NAME, "invalid cookie name", "a cookie name of letters, digits, '_' and '-'"),
        bind: matching(
          BIND_TARGET,
          "invalid binding",
          '"session" (the session id) or the name of a correlation variable',
        ),
      }),
      "a list of cookie bindings",
    ).optional(),
    nats: mapping({
      url: checked("nats://host:port, comma-separated for several", checkNatsUrls),
      prefix: checked("a subject prefix such as sb", (value) =>
        isNatsSubject(value)
          ? undefined
          : expectedGot("invalid subject prefix", "a subject prefix such as sb", value),
      ).optional(),
      queue: matching(/^[A-Za-z0-9_-]+$/, "invalid queue group", "letters, digits, '_' and '-'").optional(),
      token: text("a token").optional(),
      user: text("a user name").optional(),
      password: text("a password").optional(),
      credsFile: text("a credentials file path").optional(),
      nkeyFile: text("an NKey seed file path").optional(),
      tls: mapping({
        caFile: text("a CA certificate file path").optional(),
        certFile: text("a client certificate file path").optional(),
        keyFile: text("a client key file path").optional(),
      }).optional(),
      intake: list(
        mapping({
          operation: matching(
            /^[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+$/,
            "invalid operation name",
            "a full method name such as examples.orders.v1.Orders.Note",
          ),
          stream: matching(/^[A-Za-z0-9_-]+$/, "invalid stream name", "letters, digits, '_' and '-'"),
          durable: matching(/^[A-Za-z0-9_-]+$/, "invalid consumer name", "letters, digits, '_' and '-'"),
          filterSubject: text("a subject").optional(),
        }),
        "a list of intakes",
      ).optional(),
    }).optional(),
  }).optional(),
  cluster: mapping({
    replica: matching(REPLICA_NAME, "invalid replica name", REPLICA_EXPECTED).optional(),
    partitions: positiveInteger
      .max(MAX_PARTITIONS, { error: says("too many partitions", `at most ${MAX_PARTITIONS}`) })
      .optional(),
    leaseTtlMs: positiveInteger
      .min(MIN_LEASE_TTL_MS, { error: says("too short a lease", `at least ${MIN_LEASE_TTL_MS}`) })
      .optional(),
  }).optional(),
  store: checked(STORE_EXPECTED, checkStore).optional(),
  storeOptions: mapping({
    url: checked("nats://host:port", checkNatsUrls).optional(),
    replicas: positiveInteger.optional(),
    synchronous: z
      .enum(["full", "normal"], { error: says("unknown value", '"full" or "normal"') })
      .optional(),
    maxMemoryBytes: positiveInteger
      .max(Number.MAX_SAFE_INTEGER, { error: says("too large", "a positive integer") })
      .optional(),
  }).optional(),
  defaults: mapping({
    idleTimeoutMs: positiveInteger.optional(),
    maxLifetimeMs: positiveInteger.optional(),
    idempotencyRetentionMs: positiveInteger.optional(),
    sessionRetentionMs: positiveInteger.optional(),
    maxPayloadBytes: positiveInteger.optional(),
    maxCorrelationValueBytes: positiveInteger.optional(),
    timeScale: z
      .number({ error: says("not a number", "a number in (0, 1]") })
      .positive({ error: says("not positive", "a number in (0, 1]") })
      .max(1, { error: says("above 1", "a number in (0, 1]") })
      .optional(),
    oneWay: mapping({
      maxAttempts: positiveInteger.optional(),
      initialBackoffMs: positiveInteger.optional(),
      maxBackoffMs: positiveInteger.optional(),
      attemptTimeoutMs: positiveInteger.optional(),
    }).optional(),
  }).optional(),
});

/** The config file as written, after validation of each value on its own. */
export type ConfigFile = z.infer<typeof configFileSchema>;
