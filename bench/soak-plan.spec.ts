import { expect } from "chai";
import {
  CALLS_PER_SESSION,
  callOp,
  idleSessions,
  isEndStep,
  isOpenStep,
  liveActiveSessions,
  opensInSetup,
  planStep,
  sessionLifeSeconds,
} from "./soak-plan.js";

// The soak measures leaks only if what the bridge must keep stays level: every session the
// schedule calls ends after a bounded life, and the journals of live sessions stop growing.
describe("soak schedule", () => {
  const slots = 1_000;
  const ratePerSec = 300;

  it("gives every active session Open, the same number of calls, then End", () => {
    // Replays 10 minutes of the schedule, each call answered at once.
    const total = 600 * ratePerSec;
    const calls: (number | undefined)[] = Array.from({ length: slots }, (_, slot) =>
      opensInSetup(slot) ? (slot % (CALLS_PER_SESSION + 2)) - 1 : undefined,
    );
    const lives: number[] = [];
    const ended = new Set<number>();
    for (let i = 0; i < total; i++) {
      const { slot, step } = planStep(i, slots);
      const current = calls[slot];
      if (isOpenStep(step)) {
        expect(current, `slot ${slot} opens while its session is live`).to.equal(undefined);
        calls[slot] = 0;
      } else if (isEndStep(step)) {
        expect(current, `slot ${slot} ends without a session`).to.not.equal(undefined);
        lives.push(current as number);
        ended.add(slot);
        calls[slot] = undefined;
      } else {
        expect(current, `slot ${slot} called without a session`).to.not.equal(undefined);
        calls[slot] = (current as number) + 1;
      }
    }
    expect(ended.size, "every slot turns over").to.equal(slots);
    // Sessions opened in the set-up join mid-life; every later one has the full life.
    const afterSetup = lives.slice(slots);
    expect(afterSetup.length).to.be.greaterThan(10 * slots);
    expect(new Set(afterSetup)).to.deep.equal(new Set([CALLS_PER_SESSION]));
  });

  it("keeps the calls held in live sessions level once the first sessions have ended", () => {
    const total = 600 * ratePerSec;
    const life = sessionLifeSeconds(slots, ratePerSec) * ratePerSec;
    const calls = new Array<number>(slots).fill(0);
    let live = 0;
    let firstHalfMax = 0;
    let secondHalfMax = 0;
    let secondHalfMin = Number.POSITIVE_INFINITY;
    for (let i = 0; i < total; i++) {
      const { slot, step } = planStep(i, slots);
      if (isEndStep(step)) {
        live -= calls[slot] as number;
        calls[slot] = 0;
      } else {
        calls[slot] = (calls[slot] as number) + 1;
        live += 1;
      }
      if (i < 2 * life) continue;
      if (i < total / 2) firstHalfMax = Math.max(firstHalfMax, live);
      else {
        secondHalfMax = Math.max(secondHalfMax, live);
        secondHalfMin = Math.min(secondHalfMin, live);
      }
    }
    expect(secondHalfMax).to.be.at.most(firstHalfMax);
    expect(secondHalfMax).to.be.at.most(slots * (CALLS_PER_SESSION + 1));
    expect(secondHalfMax - secondHalfMin).to.be.at.most(slots / 10);
  });

  it("sends, of every 20 calls, 2 Open, 2 End and 11 Call (6 with a key, 1 a retry) and 5 Notify", () => {
    const counts = { open: 0, end: 0, call: 0, idempotent: 0, retry: 0, notify: 0 };
    let callIndex = 0;
    for (let i = 0; i < 20 * slots; i++) {
      const { step } = planStep(i, slots);
      if (isOpenStep(step)) counts.open++;
      else if (isEndStep(step)) counts.end++;
      else counts[callOp(callIndex++)]++;
    }
    expect(counts).to.deep.equal({
      open: 2 * slots,
      end: 2 * slots,
      call: 5 * slots,
      idempotent: 5 * slots,
      retry: slots,
      notify: 5 * slots,
    });
  });

  it("sizes idle and active sessions to the live total and a 30 s life at 300 calls/s", () => {
    expect(liveActiveSessions(slots)).to.equal(900);
    expect(idleSessions(10_000, slots) + liveActiveSessions(slots)).to.equal(10_000);
    expect(sessionLifeSeconds(slots, ratePerSec)).to.equal(30);
  });
});
