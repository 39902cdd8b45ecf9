import { setTimeout as sleep } from "node:timers/promises";
import { encodeErrorInfo } from "../../../bridge/errors/rich-status.js";
import {
  ActRequest,
  type Failure,
  type Instruction,
  ItemsRequest,
  LabItem,
  LabReply,
  type Observed,
  OpenRequest,
  PostAck,
} from "../../../sdk/gen/sessionbridge/conformance/v1/lab.js";
import type { LabSession, LabStore, RecordedOutcome } from "./lab-store.js";

export const LAB_DOMAIN = "sessionbridge.conformance";
const PACKAGE = "sessionbridge.conformance.v1";

/** Idle timeouts and lifetimes of the lab contract's services (lab.proto options). */
const TIMEOUTS: Record<string, { idleMs: number; lifetimeMs: number }> = {
  [`${PACKAGE}.LabService`]: { idleMs: 600_000, lifetimeMs: 3_600_000 },
  [`${PACKAGE}.SequentialLabService`]: { idleMs: 600_000, lifetimeMs: Number.POSITIVE_INFINITY },
  [`${PACKAGE}.SingleLabService`]: { idleMs: 600_000, lifetimeMs: Number.POSITIVE_INFINITY },
};

/** The services of lab.proto (full names) and their methods, which every transport serves. */
export const LAB_METHODS: Readonly<Record<string, readonly string[]>> = {
  [`${PACKAGE}.LabService`]: ["Open", "Act", "Peek", "Post", "Finish", "Items"],
  [`${PACKAGE}.SequentialLabService`]: ["Open", "Act", "Finish"],
  [`${PACKAGE}.SingleLabService`]: ["Open", "Act", "Finish"],
  [`${PACKAGE}.PingLabService`]: ["Ping"],
};

/**
 * PingLabService has no session options: the bridge passes its calls through without a
 * session (docs/sessions.md "sessionless"), and the service runs them against no log.
 */
const SESSIONLESS_SERVICE = `${PACKAGE}.PingLabService`;

export function isServerStreaming(method: string): boolean {
  return method === "Items";
}

/** One call as a transport hands it over. */
export interface LabRequest {
  readonly service: string;
  readonly method: string;
  readonly transport: "grpc" | "http" | "nats";
  /** Every request header, lower-case keys. */
  readonly metadata: Readonly<Record<string, string>>;
  /** Absolute deadline (epoch ms), undefined without one. */
  readonly deadlineAtMs: number | undefined;
  readonly signal: AbortSignal;
  readonly payload: Uint8Array;
}

export interface LabFault {
  readonly code: number;
  readonly message: string;
  /** google.rpc.Status details, the ErrorInfo with the reason first (S14). */
  readonly details: readonly { typeUrl: string; value: Uint8Array }[];
}

export interface LabAnswer {
  readonly fault?: LabFault;
  readonly messages: readonly Uint8Array[];
  readonly headers: Readonly<Record<string, string>>;
  readonly trailers: Readonly<Record<string, string>>;
}

/** Sends one stream item; resolves once it is written. */
export type Emit = (message: Uint8Array) => Promise<void>;

/** A fault with the reason as an ErrorInfo of the lab's domain (S14). */
export function labFault(
  code: number,
  reason: string,
  message: string,
  metadata: Record<string, string> = {},
): LabFault {
  return { code, message, details: [encodeErrorInfo({ reason, domain: LAB_DOMAIN, metadata })] };
}

export interface LabServiceOptions {
  readonly store: LabStore;
  readonly timeScale: number;
  /** `--break` switches of the faulty variant; empty for the reference. */
  readonly breaks: ReadonlySet<string>;
}

/**
 * What every service under test must do (lab.proto's header, rule by rule), independent
 * of the transport. Messages of a session run one at a time in delivery order (S6).
 */
export class LabLogic {
  readonly #store: LabStore;
  readonly #scale: number;
  readonly #breaks: ReadonlySet<string>;
  /** The tail of each session's turn queue (S6): a message starts when the one before ends. */
  readonly #turns = new Map<string, Promise<unknown>>();

  constructor(options: LabServiceOptions) {
    this.#store = options.store;
    this.#scale = options.timeScale > 0 ? options.timeScale : 1;
    this.#breaks = options.breaks;
  }

  knows(service: string, method: string): boolean {
    return LAB_METHODS[service]?.includes(method) === true;
  }

  async handle(request: LabRequest, emit: Emit): Promise<LabAnswer> {
    const reply = { headers: {}, trailers: {} };
    if (!this.knows(request.service, request.method)) {
      return {
        ...reply,
        messages: [],
        fault: labFault(12, "UNIMPLEMENTED", `no method ${request.service}/${request.method}`),
      };
    }
    let decoded: { instruction: Instruction | undefined; items?: ItemsRequest };
    try {
      decoded = this.#decode(request);
    } catch (error) {
      return {
        ...reply,
        messages: [],
        fault: labFault(3, "MALFORMED_MESSAGE", `request does not decode: ${String(error)}`),
      };
    }
    const instruction = decoded.instruction;
    const answerHeaders = {
      headers: instruction?.replyHeaders ?? {},
      trailers: instruction?.replyTrailers ?? {},
    };
    if (request.service === SESSIONLESS_SERVICE) {
      const outcome = await this.#run(request, instruction, undefined, 0);
      return { ...answerHeaders, ...this.#answerOf(request, outcome.recorded) };
    }
    const sessionId = request.metadata["sb-session-id"] ?? "";
    const work = async (): Promise<LabAnswer> => {
      const out = await this.#sessionCall(request, sessionId, decoded, emit);
      return { ...answerHeaders, ...out };
    };
    // S6: one message of a session at a time, in delivery order.
    const before = this.#turns.get(sessionId) ?? Promise.resolve();
    const mine = before.then(work, work);
    const settled = mine.catch(() => undefined);
    this.#turns.set(sessionId, settled);
    void settled.then(() => {
      if (this.#turns.get(sessionId) === settled) this.#turns.delete(sessionId);
    });
    return mine;
  }

  #decode(request: LabRequest): { instruction: Instruction | undefined; items?: ItemsRequest } {
    if (request.method === "Open") return { instruction: OpenRequest.decode(request.payload).instruction };
    if (request.method === "Items")
      return { instruction: undefined, items: ItemsRequest.decode(request.payload) };
    return { instruction: ActRequest.decode(request.payload).instruction };
  }

  async #sessionCall(
    request: LabRequest,
    sessionId: string,
    decoded: { instruction: Instruction | undefined; items?: ItemsRequest },
    emit: Emit,
  ): Promise<Omit<LabAnswer, "headers" | "trailers">> {
    const messageId = request.metadata["sb-message-id"];
    const deliveries = messageId === undefined ? 1 : this.#store.countDelivery(messageId);
    // S10: a message id already applied answers its recorded outcome, applying nothing.
    if (messageId !== undefined) {
      const recorded = this.#store.outcomeOfMessage(messageId);
      if (recorded !== undefined) return this.#answerOf(request, recorded, true);
    }
    // S11: the first N deliveries of a message id fail, so a case can watch retries.
    const failFirst = decoded.instruction?.failFirstDeliveries ?? 0;
    if (deliveries <= failFirst) {
      return {
        messages: [],
        fault: labFault(14, "UNAVAILABLE", `delivery ${deliveries} of ${failFirst} refused on purpose`),
      };
    }
    const found = this.#resolve(request, sessionId);
    if ("fault" in found) return { messages: [], fault: found.fault };
    let session = found.session;
    // S7: numbered messages count 1, 2, 3, …; duplicates replay, gaps are refused.
    const seqText = request.metadata["sb-seq"];
    const seq = seqText === undefined || seqText === "" ? 0 : Number(seqText);
    if (seq > 0 && session !== undefined) {
      if (seq <= session.lastSeq && !this.#breaks.has("seq-reapply")) {
        const recorded = this.#store.outcomeOfSeq(session.id, seq);
        if (recorded !== undefined) return this.#answerOf(request, recorded, true);
      }
      if (seq > session.lastSeq + 1) {
        const expected = session.lastSeq + 1;
        return {
          messages: [],
          fault: labFault(9, "OUT_OF_SEQUENCE", `expected sb-seq ${expected}, got ${seq}`, {
            expected_seq: String(expected),
          }),
        };
      }
    }
    if (request.method === "Items" && decoded.items !== undefined) {
      return this.#stream(request, decoded.items, session, deliveries, emit);
    }
    const outcome = await this.#run(request, decoded.instruction, session, deliveries);
    if (outcome.applied && session === undefined && outcome.fault !== undefined) {
      // A starter that fails starts nothing; only its outcome is kept for redelivery.
      if (messageId !== undefined) this.#store.commit({ messageId, outcome: outcome.recorded });
    } else if (outcome.applied) {
      const now = Date.now();
      const base: LabSession = session ?? {
        id: sessionId,
        service: request.service,
        state: "live",
        log: [],
        lastActiveMs: now,
        createdMs: now,
        lastSeq: 0,
      };
      session = {
        ...base,
        log: [...base.log, ...(outcome.fault === undefined ? (decoded.instruction?.append ?? []) : [])],
        lastActiveMs: now,
        lastSeq: seq > 0 ? Math.max(base.lastSeq, seq) : base.lastSeq,
        state: request.method === "Finish" && outcome.fault === undefined ? "closed" : base.state,
      };
      this.#store.commit({
        session,
        ...(seq > 0 ? { seq } : {}),
        ...(messageId === undefined ? {} : { messageId }),
        outcome: outcome.recorded,
      });
    }
    return this.#answerOf(request, outcome.recorded);
  }

  /** The session of a call, or the fault of S4/S12 (and S3 for SINGLE). */
  #resolve(request: LabRequest, id: string): { session: LabSession | undefined } | { fault: LabFault } {
    if (id === "")
      return { fault: labFault(5, "CORRELATION_ERROR", "no sb-session-id: the call reaches no session") };
    let session = this.#store.session(id);
    if (session !== undefined && session.state === "live" && this.#expired(session)) {
      this.#store.markExpired(id);
      session = { ...session, state: "expired" };
    }
    if (session === undefined || session.service !== request.service) {
      if (request.method !== "Open") return { fault: labFault(5, "CORRELATION_ERROR", `no session ${id}`) };
      if (request.service === `${PACKAGE}.SingleLabService`) {
        // S3/S6: one live session at most; a second Open gets ALREADY_EXISTS.
        const live = this.#store.liveSessionsOf(request.service).filter((other) => {
          const s = this.#store.session(other);
          if (s !== undefined && this.#expired(s)) {
            this.#store.markExpired(other);
            return false;
          }
          return true;
        });
        if (live.length > 0) {
          return {
            fault: labFault(6, "SESSION_ALREADY_EXISTS", "the single session of SingleLabService is live"),
          };
        }
      }
      return { session: undefined };
    }
    if (session.state === "closed")
      return { fault: labFault(5, "SESSION_CLOSED", `session ${id} was finished`) };
    if (session.state === "expired")
      return { fault: labFault(5, "SESSION_EXPIRED", `session ${id} expired`) };
    return { session };
  }

  #expired(session: LabSession): boolean {
    if (this.#breaks.has("never-expire")) return false;
    const limits = TIMEOUTS[session.service];
    if (limits === undefined) return false;
    const now = Date.now();
    return (
      now - session.lastActiveMs > limits.idleMs * this.#scale ||
      now - session.createdMs > limits.lifetimeMs * this.#scale
    );
  }

  /** Sleep, fail, append, answer (lab.proto's order); `applied` false when nothing may be recorded. */
  async #run(
    request: LabRequest,
    instruction: Instruction | undefined,
    session: LabSession | undefined,
    deliveries: number,
  ): Promise<{ applied: boolean; fault?: LabFault; recorded: RecordedOutcome }> {
    const abandon = await this.#sleep(request, instruction?.sleepMs ?? 0);
    if (abandon !== undefined) return { applied: false, fault: abandon, recorded: recordFault(abandon) };
    const append = instruction?.append ?? [];
    const sessionless = request.service === SESSIONLESS_SERVICE;
    if ((request.method === "Peek" || sessionless) && append.length > 0) {
      const fault = labFault(3, "INVALID_ARGUMENT", `${request.method} may not append`);
      return { applied: false, fault, recorded: recordFault(fault) };
    }
    if (instruction?.fail !== undefined && instruction.fail.code !== 0) {
      const fault = failureFault(instruction.fail);
      return { applied: !sessionless, fault, recorded: recordFault(fault) };
    }
    const log = sessionless ? [] : [...(session?.log ?? []), ...append];
    const body =
      request.method === "Post"
        ? PostAck.encode({}).finish()
        : LabReply.encode({
            log,
            observed: instruction?.observe === true ? this.#observed(request, deliveries) : undefined,
            payload: Buffer.from(instruction?.payload ?? new Uint8Array()),
            replayed: false,
            note: instruction?.note ?? "",
          }).finish();
    return {
      applied: !sessionless,
      recorded: {
        code: 0,
        message: "",
        reason: "",
        details: [],
        reply: Buffer.from(body).toString("base64"),
      },
    };
  }

  /** S15: a sleep that outlasts the deadline or the caller is abandoned, applying nothing. */
  async #sleep(request: LabRequest, ms: number): Promise<LabFault | undefined> {
    if (ms <= 0) return undefined;
    const left =
      request.deadlineAtMs === undefined ? Number.POSITIVE_INFINITY : request.deadlineAtMs - Date.now();
    if (this.#breaks.has("ignore-deadline")) {
      await sleep(ms).catch(() => undefined);
      return undefined;
    }
    const wait = Math.min(ms, Math.max(0, left));
    try {
      await sleep(wait, undefined, { signal: request.signal });
    } catch {
      return labFault(1, "CANCELLED", "the caller cancelled");
    }
    if (wait < ms) return labFault(4, "DEADLINE_EXCEEDED", `sleep of ${ms} ms outlasted the deadline`);
    return undefined;
  }

  #observed(request: LabRequest, deliveries: number): Observed {
    const m = request.metadata;
    const seq = Number(m["sb-seq"] ?? "0");
    return {
      sessionId: m["sb-session-id"] ?? "",
      seq: Number.isSafeInteger(seq) ? seq : 0,
      messageId: m["sb-message-id"] ?? "",
      principal: m["sb-principal"] ?? "",
      deadlineRemainingMs:
        request.deadlineAtMs === undefined ? -1 : Math.max(0, request.deadlineAtMs - Date.now()),
      metadata: this.#breaks.has("drop-metadata") ? {} : customMetadata(m),
      traceparent: m.traceparent ?? "",
      deliveryCount: deliveries,
      operation: `${request.service}/${request.method}`,
      transport: request.transport,
      incarnation: this.#store.incarnation,
    };
  }

  async #stream(
    request: LabRequest,
    items: ItemsRequest,
    session: LabSession | undefined,
    deliveries: number,
    emit: Emit,
  ): Promise<Omit<LabAnswer, "headers" | "trailers">> {
    if (session === undefined)
      return { messages: [], fault: labFault(5, "CORRELATION_ERROR", "no such session") };
    // Bounded: one item is built at a time, at most 4 MiB.
    const itemBytes = Math.min(items.itemBytes, 4 * 1024 * 1024);
    for (let index = 0; index < items.count; index++) {
      if (request.signal.aborted)
        return { messages: [], fault: labFault(1, "CANCELLED", "the caller cancelled") };
      if (index > 0 && items.intervalMs > 0) {
        const abandon = await this.#sleep(request, items.intervalMs);
        if (abandon !== undefined) return { messages: [], fault: abandon };
      }
      await emit(
        LabItem.encode({
          index,
          payload: Buffer.alloc(itemBytes, 0x61),
          observed: items.observe ? this.#observed(request, deliveries) : undefined,
        }).finish(),
      );
    }
    this.#store.commit({ session: { ...session, lastActiveMs: Date.now() }, outcome: okOutcome() });
    if (items.fail !== undefined && items.fail.code !== 0)
      return { messages: [], fault: failureFault(items.fail) };
    return { messages: [] };
  }

  #answerOf(
    request: LabRequest,
    recorded: RecordedOutcome,
    replayed = false,
  ): Omit<LabAnswer, "headers" | "trailers"> {
    if (recorded.code !== 0) {
      return {
        messages: [],
        fault: {
          code: recorded.code,
          message: recorded.message,
          details: recorded.details.map((d) => ({
            typeUrl: d.typeUrl,
            value: Buffer.from(d.value, "base64"),
          })),
        },
      };
    }
    const bytes = Buffer.from(recorded.reply, "base64");
    if (!replayed || request.method === "Post") return { messages: [bytes] };
    return { messages: [LabReply.encode({ ...LabReply.decode(bytes), replayed: true }).finish()] };
  }
}

function okOutcome(): RecordedOutcome {
  return { code: 0, message: "", reason: "", details: [], reply: "" };
}

function failureFault(fail: Failure): LabFault {
  const info =
    fail.reason === "" ? [] : [encodeErrorInfo({ reason: fail.reason, domain: LAB_DOMAIN, metadata: {} })];
  return {
    code: fail.code,
    message: fail.message,
    details: [...info, ...fail.details.map((d) => ({ typeUrl: d.typeUrl, value: d.value }))],
  };
}

function recordFault(fault: LabFault): RecordedOutcome {
  return {
    code: fault.code,
    message: fault.message,
    reason: "",
    details: fault.details.map((d) => ({
      typeUrl: d.typeUrl,
      value: Buffer.from(d.value).toString("base64"),
    })),
    reply: "",
  };
}

/** Headers that belong to a transport, not to the caller (Observed.metadata of lab.proto). */
const TRANSPORT_HEADERS = new Set([
  "content-type",
  "content-length",
  "te",
  "user-agent",
  "host",
  "connection",
  "keep-alive",
  "transfer-encoding",
  "upgrade",
  "traceparent",
  "tracestate",
  "accept",
  "accept-encoding",
  "content-encoding",
]);

export function customMetadata(metadata: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [key, value] of Object.entries(metadata)) {
    if (key.startsWith(":") || TRANSPORT_HEADERS.has(key)) continue;
    if (
      key.startsWith("grpc-") ||
      key.startsWith("connect-") ||
      key.startsWith("sb-") ||
      key.startsWith("nats-")
    )
      continue;
    out[key] = value;
  }
  return out;
}
