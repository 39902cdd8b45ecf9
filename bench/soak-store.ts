/**
 * The soak's store workload without the network (node dist/bench/soak-store.js): a memory
 * store driven directly with the sessions and journal entries the bridge commits for the
 * soak's stationary workload (soak-plan.ts: idle sessions, active slots turning over
 * through Open, calls with their outcomes and one-way messages, End; purges every 30 s of
 * a 60 s retention; not its idempotency records or outbox items), on a simulated clock and
 * as fast as it runs. What the store holds is level after the warm-up, so the process's
 * RSS, V8's spaces and malloc's brk heap over time show what the store's allocation
 * pattern costs, free of the load on the machine (which the full soak's backlog follows).
 * Prints a JSON line every 5 simulated seconds.
 *
 * SOAK_STORE_SECONDS (simulated, default 600), SOAK_SESSIONS, SOAK_ACTIVE_SESSIONS,
 * SOAK_RATE and SOAK_PAYLOAD_BYTES as for the soak.
 */
import { getHeapSpaceStatistics } from "node:v8";
import { createMemoryStore } from "../bridge/store/memory-store.js";
import type { JournalRecord, SessionRecord } from "../bridge/store/records.js";
import { memory } from "./proc-stats.js";
import { residentSplit } from "./soak-memory.js";

const env = (name: string, fallback: number): number => {
  const raw = process.env[name];
  const value = raw === undefined || raw === "" ? fallback : Number(raw);
  if (!Number.isInteger(value) || value <= 0) throw new Error(`${name} must be a positive whole number`);
  return value;
};
const seconds = env("SOAK_STORE_SECONDS", 600);
const sessions = env("SOAK_SESSIONS", 10_000);
const active = env("SOAK_ACTIVE_SESSIONS", 1_000);
const rate = env("SOAK_RATE", 300);
const payload = env("SOAK_PAYLOAD_BYTES", 1024);
const retentionMs = 60_000;
/** Steps of a slot's life (soak-plan.ts): Open, 8 calls or one-way messages, End, then a visit with none. */
const LIFE_STEPS = 10;

const session = (id: string, nowMs: number, fields: Partial<SessionRecord> = {}): SessionRecord => ({
  id,
  service: "bench.v1.Soak",
  state: "active",
  endReason: undefined,
  correlationSet: "byKey",
  correlation: { key: id },
  correlationKey: id,
  principal: "",
  createdAtMs: nowMs,
  lastActiveAtMs: nowMs,
  endedAtMs: undefined,
  idleTimeoutMs: 600_000,
  maxLifetimeMs: 3_600_000,
  nextSeq: 1,
  journalLength: 0,
  ...fields,
});
let messages = 0;
const entry = (
  sessionId: string,
  index: number,
  nowMs: number,
  bytes: number,
  inReplyTo = "",
): JournalRecord => ({
  sessionId,
  index,
  messageId: `m${(messages++).toString(36).padStart(21, "0")}`,
  kind: inReplyTo === "" ? 1 : 2,
  seq: inReplyTo === "" ? index : 0,
  inReplyTo,
  recordedAtMs: nowMs,
  envelope: new Uint8Array(bytes).fill(index & 0xff),
});

const store = createMemoryStore();
let nowMs = 1_000_000;
for (let i = 0; i < sessions - active; i++) {
  const id = `idle-${i}`;
  await store.commit({ sessions: [session(id, nowMs)], entries: [entry(id, 1, nowMs, 60)] });
}
interface Slot {
  id: string | undefined;
  step: number;
  index: number;
  generation: number;
}
const slots: Slot[] = Array.from({ length: active }, (_, j) => ({
  id: undefined,
  step: j % LIFE_STEPS,
  index: 0,
  generation: 0,
}));
// Slots past their Open start with a session opened in the set-up, as the soak's do.
for (const [j, slot] of slots.entries()) {
  if (slot.step === 0 || slot.step === LIFE_STEPS - 1) continue;
  slot.id = `a-${j}-0`;
  slot.index = 1;
  await store.commit({ sessions: [session(slot.id, nowMs)], entries: [entry(slot.id, 1, nowMs, 60)] });
}

const sample = (atSeconds: number): void => {
  const usage = process.memoryUsage();
  const spaces = Object.fromEntries(
    getHeapSpaceStatistics().map((s) => [s.space_name, [s.space_size, s.space_used_size]]),
  );
  process.stdout.write(
    `${JSON.stringify({
      atSeconds,
      rssBytes: memory(process.pid).rssBytes,
      heapUsedBytes: usage.heapUsed,
      heapTotalBytes: usage.heapTotal,
      externalBytes: usage.external,
      arrayBuffersBytes: usage.arrayBuffers,
      spaces,
      resident: residentSplit(process.pid),
      held: store.sizes(),
    })}\n`,
  );
};

const total = seconds * rate;
let nextPurgeMs = nowMs + retentionMs / 2;
const startedMs = nowMs;
let nextSampleMs = nowMs;
for (let call = 0; call < total; call++) {
  nowMs = startedMs + (call * 1000) / rate;
  const slotNumber = call % active;
  const slot = slots[slotNumber] as Slot;
  if (slot.step === 0) {
    slot.generation += 1;
    slot.id = `a-${slotNumber}-${slot.generation}`;
    slot.index = 1;
    await store.commit({ sessions: [session(slot.id, nowMs)], entries: [entry(slot.id, 1, nowMs, 60)] });
  } else if (slot.step === LIFE_STEPS - 2 && slot.id !== undefined) {
    slot.index += 1;
    await store.commit({
      sessions: [session(slot.id, nowMs, { state: "closed", endReason: "closed", endedAtMs: nowMs })],
      entries: [entry(slot.id, slot.index, nowMs, 40)],
    });
    slot.id = undefined;
  } else if (slot.id !== undefined) {
    // Of 8 calls, 5 are request-response (an outcome follows), 3 one-way.
    slot.index += 1;
    const request = entry(slot.id, slot.index, nowMs, payload + 80);
    await store.commit({ entries: [request] });
    if (slot.step % 8 < 5) {
      slot.index += 1;
      await store.commit({ entries: [entry(slot.id, slot.index, nowMs, payload + 30, request.messageId)] });
    }
  }
  slot.step = (slot.step + 1) % LIFE_STEPS;
  if (nowMs >= nextPurgeMs) {
    nextPurgeMs += retentionMs / 2;
    await store.purge(nowMs - retentionMs, nowMs - retentionMs);
  }
  if (nowMs >= nextSampleMs) {
    sample((nowMs - startedMs) / 1000);
    nextSampleMs += 5_000;
  }
}
sample(seconds);
await store.close();
