import { randomBytes } from "node:crypto";
import { setTimeout as sleep } from "node:timers/promises";
import { newId } from "../../bridge/call/ids.js";
import { decodeErrorInfo, ERROR_INFO_TYPE_URL } from "../../bridge/errors/rich-status.js";
import {
  ActRequest,
  ItemsRequest,
  LabItem,
  LabReply,
  OpenRequest,
  PostAck,
} from "../../sdk/gen/sessionbridge/conformance/v1/lab.js";
import { envelopeKindToJSON } from "../../sdk/gen/sessionbridge/v1/envelope.js";
import type { JournalEntry } from "../../sdk/gen/sessionbridge/v1/session.js";
import {
  type CallStep,
  CODE_NAMES,
  type ConformanceCase,
  type Expect,
  type Rule,
  type Step,
} from "./case-schema.js";
import type { Environment } from "./environment.js";
import { expandRequest, headerMismatch, mismatch } from "./expectation.js";
import { LAB_PACKAGE, type LabOutcome } from "./lab-wire.js";
import type { Exchange, Permutation } from "./run-result.js";

/** A check that failed, with the rules it belongs to: a failure blames precisely (S1–S15). */
export class CheckFailure extends Error {
  override readonly name = "CheckFailure";
  constructor(
    readonly rules: readonly Rule[],
    message: string,
    /** A later attempt may succeed (a read, or a service that is not reachable yet). */
    readonly retryable = true,
  ) {
    super(message);
  }
}

/** When a pipelined call lets the next one leave: once it is handed to the transport, or once written. */
interface SendOrder {
  readonly onIssued?: () => void;
  readonly onSent?: () => void;
}

/** A case (or one of its steps) that cannot run in this permutation; counted as skipped, never passed. */
export class CaseSkip extends Error {
  override readonly name = "CaseSkip";
}

interface Binding {
  readonly sessionId: string;
  readonly messageId: string;
  readonly code: number;
  readonly reply: unknown;
}

/** Services whose one session (SINGLE) or one session at a time (SEQUENTIAL) a case must end. */
const EXCLUSIVE_SERVICES = new Set(["SequentialLabService", "SingleLabService"]);

/** lab.proto's service without session options: the bridge passes it through (docs/sessions.md). */
const SESSIONLESS_SERVICE = "PingLabService";

/** The pause between the sends of a pipeline: they leave in order without waiting for answers. */
const PIPELINE_GAP_MS = 25;

/**
 * Runs one case in one permutation. In direct mode it plays the bridge: it issues session
 * and message ids (the bridge's alphabet), sb-seq, sb-principal, traceparent and the
 * deadline, and resolves correlation values to sessions itself.
 */
export class CaseExecution {
  readonly transcript: Exchange[] = [];
  readonly #case: ConformanceCase;
  readonly #env: Environment;
  readonly #permutation: Permutation;
  /** Correlation values are namespaced per execution, so cases share an environment safely. */
  readonly #ns = `${randomBytes(5).toString("hex")}`;
  readonly #bindings = new Map<string, Binding>();
  /**
   * The log entries sent to each session (S1), by session id; `#sentUnrouted` holds those
   * of calls whose session the runner learns only from the answer (bridged, by values).
   */
  readonly #sent = new Map<string, Set<string>>();
  readonly #sentUnrouted = new Set<string>();
  /** Direct mode: the runner's correlation index (S2, S5) and the SINGLE service's session. */
  readonly #index = new Map<string, string>();
  #single: string | undefined;
  /** Sessions of SEQUENTIAL and SINGLE services, finished after the case so the next can start. */
  readonly #exclusiveSessions = new Map<string, string>();
  #step = 0;
  /** The service streams over NATS (target feature nats_streams). */
  readonly #natsStreams: boolean;

  constructor(
    c: ConformanceCase,
    env: Environment,
    permutation: Permutation,
    options: { readonly natsStreams?: boolean } = {},
  ) {
    this.#case = c;
    this.#env = env;
    this.#permutation = permutation;
    this.#natsStreams = options.natsStreams ?? false;
  }

  get #direct(): boolean {
    return this.#permutation.mode === "direct";
  }

  async run(): Promise<void> {
    try {
      for (const [i, step] of this.#case.steps.entries()) {
        this.#step = i + 1;
        await this.#runStep(step);
      }
    } finally {
      await this.#cleanup();
    }
  }

  async #runStep(step: Step): Promise<void> {
    if ("call" in step) {
      await this.#call(step);
    } else if ("parallel" in step) {
      await allChecked(step.parallel.map((c) => this.#call(c, step.rules)));
    } else if ("pipeline" in step) {
      const pending: Promise<void>[] = [];
      // Back to back only where one connection keeps the order of sends (S6 arrival order).
      const backToBack = step.back_to_back === true && this.#permutation.inbound !== "http";
      for (const c of step.pipeline) {
        // Each request is on the wire before the next is sent; over HTTP/1.1 they travel on
        // separate connections, so a short pause also lets the receiver read them in order.
        let sent: () => void = () => undefined;
        const written = new Promise<void>((resolve) => {
          sent = resolve;
        });
        const call = this.#call(c, step.rules, backToBack ? { onIssued: sent } : { onSent: sent });
        pending.push(call);
        await Promise.race([written, call.catch(() => undefined)]);
        if (!backToBack) await sleep(PIPELINE_GAP_MS);
      }
      await allChecked(pending);
    } else if ("kill" in step) {
      this.transcript.push({ step: this.#step, label: `kill -9 the ${step.kill} and start it again` });
      if (step.kill === "service") await this.#env.killService();
      else if (this.#direct) throw new CaseSkip("a bridge kill needs bridged mode");
      else await this.#env.killBridge();
    } else if ("sleep_scaled_ms" in step) {
      const ms = Math.ceil(step.sleep_scaled_ms * this.#env.spec.timeScale);
      this.transcript.push({
        step: this.#step,
        label: `sleep ${step.sleep_scaled_ms} ms of contract time (${ms} ms)`,
      });
      await sleep(ms);
    } else if ("sleep_ms" in step) {
      this.transcript.push({ step: this.#step, label: `sleep ${step.sleep_ms} ms` });
      await sleep(step.sleep_ms);
    } else if ("history" in step) {
      if (this.#direct) return;
      await this.#history(step.history, step.rules ?? this.#case.rules);
    }
  }

  async #call(step: CallStep, groupRules?: readonly Rule[], order: SendOrder = {}): Promise<void> {
    if (step.modes !== undefined && !step.modes.includes(this.#permutation.mode)) return;
    const rules = step.rules ?? groupRules ?? this.#case.rules;
    const deadlineAt = step.eventually_ms === undefined ? 0 : Date.now() + step.eventually_ms;
    for (;;) {
      try {
        await this.#callOnce(step, rules, order);
        return;
      } catch (error) {
        if (!(error instanceof CheckFailure) || !error.retryable || Date.now() >= deadlineAt) throw error;
        await sleep(100);
      }
    }
  }

  async #callOnce(step: CallStep, rules: readonly Rule[], order: SendOrder): Promise<void> {
    const { onSent } = order;
    const [serviceName, method] = step.call.split(".") as [string, string];
    const service = `${LAB_PACKAGE}.${serviceName}`;
    const streaming = method === "Items";
    // The bridge streams over NATS (docs/nats.md "Streaming"); a service only if it says so.
    const serviceOverNats =
      (this.#direct && this.#permutation.inbound === "nats") || this.#permutation.outbound === "nats";
    if (streaming && serviceOverNats && !this.#natsStreams) {
      throw new CaseSkip("the reference does not stream over NATS");
    }
    if (step.cancel_after_ms !== undefined && this.#permutation.inbound === "nats" && !streaming) {
      throw new CaseSkip("NATS request-reply has no way to cancel a request");
    }
    const body = this.#namespaced(expandRequest(step.request) as Record<string, unknown>);
    const request = encodeRequest(method, body);
    const route = this.#route(step, serviceName, method, body);
    this.#noteAppends(route.sessionId, body);
    const metadata: Record<string, string> = { ...(step.metadata ?? {}) };
    if (route.sessionId !== undefined) metadata["sb-session-id"] = route.sessionId;
    if (step.seq !== undefined) metadata["sb-seq"] = String(step.seq);
    let messageId = "";
    if (this.#direct) {
      // The runner as the bridge: the facts a process receives (docs/sessions.md).
      messageId = step.message_id === undefined ? newId() : this.#binding(step.message_id).messageId;
      metadata["sb-message-id"] = messageId;
      metadata["sb-principal"] = "anonymous";
      metadata.traceparent ??= `00-${randomBytes(16).toString("hex")}-${randomBytes(8).toString("hex")}-01`;
    } else if (step.idempotency_key !== undefined) {
      // Keys are scoped to the principal, which every case shares: namespace them per execution.
      metadata["idempotency-key"] = `${this.#ns}-${step.idempotency_key}`;
    }
    const operation = `${serviceName}/${method}`;
    let outcome: LabOutcome;
    if (route.refusal !== undefined) {
      outcome = route.refusal;
    } else {
      const transport = await this.#env.transport(this.#permutation.inbound);
      const abort = step.cancel_after_ms === undefined ? undefined : new AbortController();
      const timer = abort === undefined ? undefined : setTimeout(() => abort.abort(), step.cancel_after_ms);
      try {
        // The transport opens the stream or publishes before its first await: the next
        // call of a back-to-back pipeline, released here, is issued after this one.
        order.onIssued?.();
        outcome = await transport.call({
          service,
          method,
          request,
          metadata,
          serverStreaming: streaming,
          ...(step.deadline === undefined ? {} : { timeout: step.deadline }),
          ...(abort === undefined ? {} : { signal: abort.signal }),
          ...(onSent === undefined ? {} : { onSent }),
        });
      } finally {
        clearTimeout(timer);
      }
    }
    const reason = reasonOf(outcome);
    const replies = outcome.messages.map((m) => decodeResponse(method, m));
    this.transcript.push({
      step: this.#step,
      label: step.as === undefined ? operation : `${operation} as ${step.as}`,
      request: {
        operation,
        body,
        metadata,
        ...(step.deadline === undefined ? {} : { deadline: step.deadline }),
      },
      response: {
        code: CODE_NAMES[outcome.code] ?? String(outcome.code),
        ...(reason === undefined ? {} : { reason }),
        message: outcome.message,
        headers: outcome.headers,
        trailers: outcome.trailers,
        ...(replies.length === 0 ? {} : { body: streaming ? replies : replies[0] }),
      },
      ...(route.refusal === undefined ? {} : { note: "answered by the runner, playing the bridge" }),
    });
    const sessionId = this.#direct
      ? (route.sessionId ?? "")
      : (outcome.headers["sb-session-id"] ?? outcome.trailers["sb-session-id"] ?? route.sessionId ?? "");
    if (outcome.code === 0) this.#afterSuccess(serviceName, method, route, sessionId);
    if (step.as !== undefined) {
      this.#bindings.set(step.as, {
        sessionId,
        messageId: this.#direct ? messageId : (outcome.headers["sb-message-id"] ?? ""),
        code: outcome.code,
        reply: replies[0],
      });
    }
    const expected: Expect = {
      ...(step.expect ?? {}),
      ...((this.#direct ? step.expect_direct : step.expect_bridged) ?? {}),
    };
    this.#check(expected, outcome, reason, replies, rules, operation, sessionId);
  }

  /** Remembers what a call asks to append, before it is sent (parallel calls included). */
  #noteAppends(sessionId: string | undefined, body: Record<string, unknown>): void {
    const append = (body.instruction as { append?: unknown } | undefined)?.append;
    if (!Array.isArray(append)) return;
    let into = this.#sentUnrouted;
    if (sessionId !== undefined) {
      into = this.#sent.get(sessionId) ?? new Set<string>();
      this.#sent.set(sessionId, into);
    }
    for (const entry of append) if (typeof entry === "string") into.add(entry);
  }

  /**
   * Entries of a reply's log that no call of this execution sent to that session: they
   * can only come from another session's state (S1), whatever the step checks.
   */
  #foreignEntries(sessionId: string, reply: unknown): string[] {
    const log = (reply as { log?: unknown } | undefined)?.log;
    if (!Array.isArray(log)) return [];
    const sent = (entry: string): boolean => {
      if (this.#sentUnrouted.has(entry)) return true;
      if (sessionId !== "") return this.#sent.get(sessionId)?.has(entry) === true;
      // The answer named no session: anything this execution sent may be there.
      return [...this.#sent.values()].some((entries) => entries.has(entry));
    };
    return log.filter((entry): entry is string => typeof entry === "string" && !sent(entry));
  }

  #check(
    expected: Expect,
    outcome: LabOutcome,
    reason: string | undefined,
    replies: readonly unknown[],
    rules: readonly Rule[],
    operation: string,
    sessionId: string,
  ): void {
    // Retrying applies a write again: only reads, and calls that never got through, are retried.
    const retryable = operation.endsWith("/Peek") || outcome.code === 14;
    const fail = (what: string) => {
      throw new CheckFailure(rules, `step ${this.#step} (${operation}): ${what}`, retryable);
    };
    const wantCode =
      typeof expected.code === "number" ? expected.code : CODE_NAMES.indexOf(expected.code ?? "OK");
    if (outcome.code !== wantCode) {
      fail(
        `expected ${CODE_NAMES[wantCode]}, got ${CODE_NAMES[outcome.code] ?? outcome.code}${reason === undefined ? "" : ` (${reason})`}: ${outcome.message}`,
      );
    }
    const foreign = this.#foreignEntries(sessionId, replies[0]);
    if (foreign.length > 0) {
      // Blamed on S1 alone: the step's own rule is not what broke, and the entries stay.
      throw new CheckFailure(
        ["S1"],
        `step ${this.#step} (${operation}): the log has entries never sent to session ${sessionId || "(none named)"}: ${JSON.stringify(foreign.slice(0, 10))}${foreign.length > 10 ? ` and ${foreign.length - 10} more` : ""}`,
        false,
      );
    }
    if (expected.reason !== undefined) {
      const accepted = Array.isArray(expected.reason) ? expected.reason : [expected.reason];
      if (reason === undefined || !accepted.includes(reason)) {
        fail(`expected reason ${accepted.join(" or ")}, got ${reason ?? "none"}`);
      }
    }
    if (expected.message !== undefined && outcome.message !== expected.message) {
      fail(`expected message ${JSON.stringify(expected.message)}, got ${JSON.stringify(outcome.message)}`);
    }
    if (expected.reason_metadata !== undefined) {
      const info = outcome.details.find((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
      const meta = info === undefined ? {} : decodeErrorInfo(info.value).metadata;
      const m = mismatch(expected.reason_metadata, meta, "ErrorInfo.metadata");
      if (m !== undefined) fail(m);
    }
    if (expected.details !== undefined) {
      let at = 0;
      for (const want of expected.details) {
        const found = outcome.details.findIndex((d, i) => i >= at && d.typeUrl.endsWith(want));
        if (found < 0)
          fail(`expected detail ${want} in order, got ${outcome.details.map((d) => d.typeUrl).join(", ")}`);
        at = found + 1;
      }
    }
    for (const [key, value] of Object.entries(expected.headers ?? {})) {
      const m = headerMismatch(value, outcome.headers[key]);
      if (m !== undefined) fail(`expected header ${key}: ${m}`);
    }
    for (const [key, value] of Object.entries(expected.trailers ?? {})) {
      // NATS has no trailers: a process's trailers arrive among the headers there.
      const m = headerMismatch(value, outcome.trailers[key] ?? outcome.headers[key]);
      if (m !== undefined) fail(`expected trailer ${key}: ${m}`);
    }
    if (expected.reply !== undefined) {
      const m = mismatch(this.#resolveRefs(expected.reply), replies[0]);
      if (m !== undefined) fail(m);
    }
    if (expected.items !== undefined && replies.length !== expected.items) {
      fail(`expected ${expected.items} stream items, got ${replies.length}`);
    }
    if (expected.item !== undefined) {
      for (const [i, item] of replies.entries()) {
        const m = mismatch(this.#resolveRefs(expected.item), item, `item[${i}]`);
        if (m !== undefined) fail(m);
      }
    }
  }

  /** Which session a call names (`sb-session-id`), or the runner's own refusal as the bridge. */
  #route(
    step: CallStep,
    serviceName: string,
    method: string,
    body: Record<string, unknown>,
  ): { sessionId?: string; key?: string; fresh?: boolean; refusal?: LabOutcome } {
    if (step.session === "unknown") return { sessionId: newId() };
    if (step.session === "none") return {};
    if (step.session !== undefined) return { sessionId: this.#binding(step.session).sessionId };
    // Sessionless calls (PingLabService) reach no session: the bridge resolves none.
    if (!this.#direct || serviceName === SESSIONLESS_SERVICE) return {};
    if (serviceName === "SingleLabService") {
      if (method === "Open") return { sessionId: newId(), fresh: true };
      return this.#single === undefined ? { refusal: correlationError() } : { sessionId: this.#single };
    }
    const tenant = body.tenant;
    const account = body.account;
    if (typeof tenant !== "string" || typeof account !== "string" || account === "") return {};
    const key = `${serviceName}|${tenant}|${account}`;
    const known = this.#index.get(key);
    if (known !== undefined) return { sessionId: known, key };
    if (method === "Open") return { sessionId: newId(), key, fresh: true };
    return { refusal: correlationError(), key };
  }

  #afterSuccess(
    serviceName: string,
    method: string,
    route: { sessionId?: string; key?: string; fresh?: boolean },
    sessionId: string,
  ): void {
    if (EXCLUSIVE_SERVICES.has(serviceName) && sessionId !== "") {
      if (method === "Finish") this.#exclusiveSessions.delete(sessionId);
      else this.#exclusiveSessions.set(sessionId, serviceName);
    }
    if (!this.#direct) return;
    if (method === "Open" && route.fresh === true) {
      if (serviceName === "SingleLabService") this.#single = route.sessionId;
      else if (route.key !== undefined && route.sessionId !== undefined)
        this.#index.set(route.key, route.sessionId);
    }
    if (method === "Finish") {
      for (const [key, id] of this.#index) if (id === sessionId) this.#index.delete(key);
      if (this.#single === sessionId) this.#single = undefined;
    }
  }

  /** The case's correlation values live in its own namespace: `tenant` gets a prefix. */
  #namespaced(body: Record<string, unknown>): Record<string, unknown> {
    if (typeof body.tenant !== "string" || body.tenant === "") return body;
    return { ...body, tenant: `${this.#ns}-${body.tenant}` };
  }

  #binding(ref: string): Binding {
    const name = ref.slice(1).split(".")[0] ?? "";
    const found = this.#bindings.get(name);
    if (found === undefined)
      throw new CheckFailure(this.#case.rules, `step ${this.#step}: ${ref} was never bound`);
    return found;
  }

  /** `$name.session_id`, `$name.message_id` and `$name.reply.<field>` in expectations. */
  #resolveRefs(value: unknown): unknown {
    if (typeof value === "string" && /^\$[A-Za-z_]\w*\./.test(value)) {
      const [name, ...path] = value.slice(1).split(".");
      const binding = this.#bindings.get(name ?? "");
      if (binding === undefined) return value;
      let at: unknown =
        path[0] === "session_id"
          ? binding.sessionId
          : path[0] === "message_id"
            ? binding.messageId
            : binding.reply;
      for (const part of path[0] === "reply" ? path.slice(1) : []) {
        at = typeof at === "object" && at !== null ? (at as Record<string, unknown>)[part] : undefined;
      }
      return at;
    }
    if (Array.isArray(value)) return value.map((v) => this.#resolveRefs(v));
    if (typeof value === "object" && value !== null) {
      return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, this.#resolveRefs(v)]));
    }
    return value;
  }

  async #history(
    spec: {
      session: string;
      entries: readonly JournalWant[];
      eventually_ms?: number | undefined;
    },
    rules: readonly Rule[],
  ): Promise<void> {
    const client = this.#env.sessions();
    if (client === undefined) return;
    const sessionId = this.#binding(spec.session).sessionId;
    const until = Date.now() + (spec.eventually_ms ?? 0);
    for (;;) {
      const entries: JournalEntry[] = [];
      try {
        for await (const entry of client.history({ sessionId })) entries.push(entry);
      } catch (error) {
        throw new CheckFailure(rules, `step ${this.#step}: History failed: ${String(error)}`);
      }
      const problem = this.#journalMismatch(spec.entries, entries);
      const shown = entries.map((e) => {
        const env = e.envelope;
        const kind = env === undefined ? "?" : envelopeKindToJSON(env.kind).replace("ENVELOPE_KIND_", "");
        return `${e.index} ${kind} ${env?.operation ?? ""}${env?.fault?.reason ? ` ${env.fault.reason}` : ""}`;
      });
      if (problem === undefined || Date.now() >= until) {
        this.transcript.push({
          step: this.#step,
          label: `SessionService.History ${sessionId}`,
          note: shown.join("\n"),
        });
        if (problem !== undefined) throw new CheckFailure(rules, `step ${this.#step} (History): ${problem}`);
        return;
      }
      await sleep(100);
    }
  }

  #journalMismatch(wanted: readonly JournalWant[], entries: readonly JournalEntry[]): string | undefined {
    let at = 0;
    for (const want of wanted) {
      const messageId = want.message_id === undefined ? undefined : this.#resolveRefs(want.message_id);
      const found = entries.findIndex((e, i) => {
        const env = e.envelope;
        if (i < at || env === undefined) return false;
        if (envelopeKindToJSON(env.kind) !== `ENVELOPE_KIND_${want.kind}`) return false;
        if (want.method !== undefined && !env.operation.endsWith(`/${want.method}`)) return false;
        if (want.reason !== undefined && env.fault?.reason !== want.reason) return false;
        if (messageId !== undefined && env.messageId !== messageId && env.inReplyTo !== messageId)
          return false;
        return true;
      });
      if (found < 0) return `the journal has no ${JSON.stringify(want)} after entry ${at}`;
      at = found + 1;
    }
    return undefined;
  }

  /** Finishes SEQUENTIAL and SINGLE sessions a case left open, so the next case can start one. */
  async #cleanup(): Promise<void> {
    for (const [id, serviceName] of this.#exclusiveSessions) {
      try {
        const transport = await this.#env.transport(this.#permutation.inbound);
        const metadata: Record<string, string> = { "sb-session-id": id };
        if (this.#direct) {
          metadata["sb-message-id"] = newId();
          metadata["sb-principal"] = "anonymous";
        }
        await transport.call({
          service: `${LAB_PACKAGE}.${serviceName}`,
          method: "Finish",
          request: ActRequest.encode({ instruction: undefined }).finish(),
          metadata,
          serverStreaming: false,
          timeout: "5S",
        });
      } catch {
        // best effort: the next case reports what is left
      }
    }
  }
}

interface JournalWant {
  readonly kind: string;
  readonly method?: string | undefined;
  readonly reason?: string | undefined;
  readonly message_id?: string | undefined;
}

/** Waits for every call; the first failure (in step order) is the one reported. */
async function allChecked(calls: readonly Promise<void>[]): Promise<void> {
  const settled = await Promise.allSettled(calls);
  const failed = settled.find((s) => s.status === "rejected");
  if (failed !== undefined) throw (failed as PromiseRejectedResult).reason;
}

function correlationError(): LabOutcome {
  return {
    code: 5,
    message: "no live session has these correlation values",
    details: [],
    headers: {},
    trailers: {},
    messages: [],
  };
}

function reasonOf(outcome: LabOutcome): string | undefined {
  const info = outcome.details.find((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
  return info === undefined ? undefined : decodeErrorInfo(info.value).reason;
}

function encodeRequest(method: string, body: Record<string, unknown>): Uint8Array {
  if (method === "Open") return OpenRequest.encode(OpenRequest.fromJSON(body)).finish();
  if (method === "Items") return ItemsRequest.encode(ItemsRequest.fromJSON(body)).finish();
  return ActRequest.encode(ActRequest.fromJSON(body)).finish();
}

function decodeResponse(method: string, bytes: Uint8Array): unknown {
  try {
    if (method === "Post") return PostAck.toJSON(PostAck.decode(bytes));
    if (method === "Items") return LabItem.toJSON(LabItem.decode(bytes));
    return LabReply.toJSON(LabReply.decode(bytes));
  } catch (error) {
    return { undecodable: String(error), bytes: Buffer.from(bytes).toString("base64").slice(0, 200) };
  }
}
