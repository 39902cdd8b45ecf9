import { replyFrameLength, requestFrame } from "./grpc-frames.js";
import type { H2Pool } from "./h2-client.js";
import { callOp, isEndStep, isOpenStep, opensInSetup, planStep, type SoakOp } from "./soak-plan.js";

const SERVICE = "/bench.v1.Soak";
export const SOAK_OPEN_PATH = `${SERVICE}/Open`;
const CALL = `${SERVICE}/Call`;
const NOTIFY = `${SERVICE}/Notify`;
const END = `${SERVICE}/End`;
/** Keys of the active slots' sessions (idle ones use another prefix). */
export const ACTIVE_KEY_PREFIX = "a";

/** Answers one scheduled call: undefined on success, else why it failed. */
export type SoakDone = (failure: string | undefined) => void;

interface ActiveSession {
  readonly key: string;
  state: "opening" | "open" | "failed";
  /** No call is planned for it any more (its End is due): retries leave it alone. */
  ending: boolean;
  inflight: number;
  /** Calls due before its Open was answered: a client calls a session once it has it. */
  readonly waiting: (() => void)[];
  /** Its End, once due, waits for its calls' answers, as a client ending its own session does. */
  end: (() => void) | undefined;
  /** Calls answered in it during the run (Open included). */
  journalCalls: number;
}

export interface SoakSessionsOptions {
  readonly activeSlots: number;
  readonly payloadBytes: number;
}

/**
 * The soak's active sessions on their schedule (soak-plan.ts): sends each due call to its
 * slot's session, holds a call until that session's Open is answered and an End until the
 * session's calls are, so that no failure comes from the client's own ordering. Latency
 * still counts from the call's scheduled time.
 */
export class SoakSessions {
  /** Calls sent, by kind. */
  readonly byKind: Record<SoakOp, number> = { call: 0, idempotent: 0, retry: 0, notify: 0, end: 0, open: 0 };
  /** Calls answered in the journals of active sessions live now (the set-up's Opens not counted). */
  liveJournalCalls = 0;
  /** Active sessions whose Open was answered and whose End was not. */
  liveActive = 0;
  readonly #pool: H2Pool;
  readonly #slots: (ActiveSession | undefined)[];
  readonly #payload: Buffer;
  readonly #empty = Buffer.alloc(0);
  readonly #replyBytes: number;
  readonly #emptyReplyBytes = replyFrameLength(0);
  readonly #activeSlots: number;
  #nextKey = 0;
  #calls = 0;
  #lastIdempotency: { readonly key: string; readonly session: ActiveSession } | undefined;

  constructor(pool: H2Pool, options: SoakSessionsOptions) {
    this.#pool = pool;
    this.#activeSlots = options.activeSlots;
    this.#slots = Array.from({ length: options.activeSlots }, () => undefined);
    this.#payload = Buffer.alloc(options.payloadBytes, 0x5a);
    this.#replyBytes = replyFrameLength(options.payloadBytes);
  }

  /** Slots that start mid-life, with a session the set-up opens (keys `a0`, `a1`, …). */
  setupCount(): number {
    let count = 0;
    for (let slot = 0; slot < this.#activeSlots; slot++) if (opensInSetup(slot)) count++;
    return count;
  }

  /** Takes the sessions the set-up opened (the first setupCount() keys) as open. */
  adoptSetup(): void {
    for (let slot = 0; slot < this.#activeSlots; slot++) {
      if (!opensInSetup(slot)) continue;
      this.#slots[slot] = this.#session(`${ACTIVE_KEY_PREFIX}${this.#nextKey++}`, "open");
      this.liveActive++;
    }
  }

  /** Sends the index-th call of the schedule; `done` is called once, whatever happens. */
  send(index: number, done: (kind: string) => SoakDone): void {
    const { slot, step } = planStep(index, this.#activeSlots);
    if (isOpenStep(step)) {
      this.#open(index, slot, done("Open"));
      return;
    }
    const session = this.#slots[slot];
    if (isEndStep(step)) {
      this.byKind.end++;
      const answer = done("End");
      if (session === undefined) {
        answer("no session in the slot");
        return;
      }
      session.ending = true;
      this.#slots[slot] = undefined;
      session.end = () => this.#end(index, session, answer);
      this.#endWhenQuiet(session);
      return;
    }
    const op = callOp(this.#calls++);
    if (op === "notify") {
      this.byKind.notify++;
      this.#on(session, done("Notify"), (answer) =>
        this.#unary(
          index,
          NOTIFY,
          (session as ActiveSession).key,
          this.#payload,
          this.#emptyReplyBytes,
          answer,
        ),
      );
      return;
    }
    this.byKind.call++;
    let target = session;
    let idempotencyKey: string | undefined;
    const last = this.#lastIdempotency;
    if (op === "retry" && last !== undefined && !last.session.ending && last.session.state !== "failed") {
      // A retry of the previous idempotent call: same key, same session, same bytes (S8).
      this.byKind.retry++;
      target = last.session;
      idempotencyKey = last.key;
    } else if (op !== "call" && session !== undefined) {
      this.byKind.idempotent++;
      idempotencyKey = `i${index}`;
      this.#lastIdempotency = { key: idempotencyKey, session };
    }
    const headers = idempotencyKey === undefined ? undefined : { "idempotency-key": idempotencyKey };
    this.#on(target, done("Call"), (answer) =>
      this.#unary(
        index,
        CALL,
        (target as ActiveSession).key,
        this.#payload,
        this.#replyBytes,
        answer,
        headers,
      ),
    );
  }

  #session(key: string, state: ActiveSession["state"]): ActiveSession {
    return { key, state, ending: false, inflight: 0, waiting: [], end: undefined, journalCalls: 0 };
  }

  #open(index: number, slot: number, answer: SoakDone): void {
    this.byKind.open++;
    const session = this.#session(`${ACTIVE_KEY_PREFIX}${this.#nextKey++}`, "opening");
    this.#slots[slot] = session;
    this.#unary(index, SOAK_OPEN_PATH, session.key, this.#empty, this.#emptyReplyBytes, (failure) => {
      if (failure === undefined) {
        session.state = "open";
        this.liveActive++;
        this.#answered(session);
      } else session.state = "failed";
      answer(failure);
      // Held calls go now (or fail with the Open), then the End if it is due.
      for (const run of session.waiting.splice(0)) run();
      this.#endWhenQuiet(session);
    });
  }

  /** Runs a call on the session once it is open; fails it if its Open failed. */
  #on(session: ActiveSession | undefined, answer: SoakDone, call: (answer: SoakDone) => void): void {
    if (session === undefined) {
      answer("no session in the slot");
      return;
    }
    const run = (): void => {
      if (session.state === "failed") {
        answer("its session's Open failed");
        return;
      }
      session.inflight++;
      call((failure) => {
        session.inflight--;
        if (failure === undefined) this.#answered(session);
        answer(failure);
        this.#endWhenQuiet(session);
      });
    };
    if (session.state === "opening") session.waiting.push(run);
    else run();
  }

  #endWhenQuiet(session: ActiveSession): void {
    const end = session.end;
    if (
      end === undefined ||
      session.state === "opening" ||
      session.inflight > 0 ||
      session.waiting.length > 0
    )
      return;
    session.end = undefined;
    end();
  }

  #end(index: number, session: ActiveSession, answer: SoakDone): void {
    if (session.state === "failed") {
      answer("its session's Open failed");
      return;
    }
    this.#unary(index, END, session.key, this.#payload, this.#replyBytes, (failure) => {
      if (failure === undefined) {
        this.liveActive--;
        this.liveJournalCalls -= session.journalCalls;
        session.journalCalls = 0;
      }
      answer(failure);
    });
  }

  #answered(session: ActiveSession): void {
    session.journalCalls++;
    this.liveJournalCalls++;
  }

  /** A connection the bridge closed (or lost) throws on send: its calls fail and the run goes on. */
  #unary(
    index: number,
    path: string,
    key: string,
    payload: Buffer,
    replyBytes: number,
    answer: SoakDone,
    headers?: Record<string, string>,
  ): void {
    try {
      this.#pool.unary(index, path, requestFrame(key, payload), replyBytes, answer, headers);
    } catch (error) {
      answer(error instanceof Error ? error.message : String(error));
    }
  }
}
