/**
 * The soak's stationary schedule, as pure functions of the call's index. Every call
 * journals (S9: the journal is the session's history), so a soak whose sessions live all
 * run measures its growing data, not a leak. Here the live data stays level: idle sessions
 * opened in the set-up are never called (a call would lengthen their journals), and an
 * active set of slots turns over, each slot living through Open, CALLS_PER_SESSION calls or
 * one-way messages, and End, then opening a new session. The journal held by live sessions
 * is then bounded by the active slots times one life's calls, and ended sessions are purged
 * once the retention has passed.
 */

/** Calls and one-way messages in an active session's life, between its Open and its End. */
export const CALLS_PER_SESSION = 8;
/** Steps of a life: Open (step 0), the calls (1 to CALLS_PER_SESSION), End (the last). */
export const LIFE_STEPS = CALLS_PER_SESSION + 2;
const END_STEP = LIFE_STEPS - 1;
/** The mix of calls repeats every 16 of them: 11 Call and 5 Notify. */
const CALL_MIX = 16;

export type SoakOp = "open" | "end" | "call" | "idempotent" | "retry" | "notify";

export interface PlannedStep {
  /** The active slot the call belongs to. */
  readonly slot: number;
  /** The slot's step in its session's life: 0 Open, LIFE_STEPS − 1 End, calls between. */
  readonly step: number;
}

/**
 * The calls visit the slots round-robin; each visit moves a slot one step on. Slot j starts
 * at step j mod LIFE_STEPS, so any run of 2 × LIFE_STEPS consecutive calls holds every step
 * twice: of every 20 calls, 2 Open, 2 End and 16 calls or one-way messages.
 */
export function planStep(index: number, activeSlots: number): PlannedStep {
  const slot = index % activeSlots;
  const visit = Math.floor(index / activeSlots);
  return { slot, step: (visit + slot) % LIFE_STEPS };
}

export function isOpenStep(step: number): boolean {
  return step === 0;
}

export function isEndStep(step: number): boolean {
  return step === END_STEP;
}

/**
 * What the n-th call step sends. Of every 16: 11 Call, half of them with an
 * Idempotency-Key (5 new keys and 1 retry of the key just before, S8), and 5 Notify.
 */
export function callOp(callIndex: number): Exclude<SoakOp, "open" | "end"> {
  const at = callIndex % CALL_MIX;
  if (at >= 11) return "notify";
  if (at === 10) return "retry";
  return at % 2 === 1 ? "idempotent" : "call";
}

/**
 * Slots whose first visit is not an Open start mid-life, with a session opened in the
 * set-up; the others open their first session in the run.
 */
export function opensInSetup(slot: number): boolean {
  return !isOpenStep(slot % LIFE_STEPS);
}

/**
 * Active sessions live at a time: a slot holds none between its End and its next Open (one
 * visit of LIFE_STEPS), so about (LIFE_STEPS − 1) / LIFE_STEPS of the slots.
 */
export function liveActiveSessions(activeSlots: number): number {
  return Math.round((activeSlots * (LIFE_STEPS - 1)) / LIFE_STEPS);
}

/** Idle sessions to open so that idle and active ones together keep `sessions` live. */
export function idleSessions(sessions: number, activeSlots: number): number {
  return Math.max(0, sessions - liveActiveSessions(activeSlots));
}

/** Seconds from an active session's Open to its End: LIFE_STEPS − 1 visits of all the slots. */
export function sessionLifeSeconds(activeSlots: number, ratePerSec: number): number {
  return ((LIFE_STEPS - 1) * activeSlots) / ratePerSec;
}
