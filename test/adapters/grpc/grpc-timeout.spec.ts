import type http2 from "node:http2";
import { expect } from "chai";
import { MAX_DEADLINE_MS, parseGrpcTimeout } from "../../../adapters/grpc/grpc-wire-headers.js";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";
import { grpcFrame } from "../../support/passthrough-server.js";
import { connectRaw, decodeResult, encodeOp, rawCall } from "./raw-h2-client.js";

/**
 * grpc-timeout in every unit (S15): grpc-go writes short deadlines in microseconds or
 * nanoseconds, which once became fractional milliseconds and failed every sessionful
 * call with INTERNAL.
 */
describe("grpc-timeout units through the bridge", () => {
  let harness: LabHarness;
  let session: http2.ClientHttp2Session;
  let n = 0;

  before(async () => {
    harness = await startLabHarness("memory");
    session = await connectRaw(harness.address);
  });
  after(async () => {
    session.close();
    await harness.close();
  });

  /** Starts a session with `timeout`; returns the remaining deadline the process saw. */
  async function startWith(timeout: string): Promise<number> {
    n += 1;
    const outcome = await rawCall(session, {
      path: "/test.lab.v1.Counter/Start",
      headers: { "grpc-timeout": timeout },
      body: [grpcFrame(encodeOp({ key: `timeout-${n}` }))],
    });
    expect(outcome.grpcStatus, `${timeout}: ${outcome.grpcMessage}`).to.equal(0);
    return Number(decodeResult(outcome.data.subarray(5)).deadline_ms);
  }

  const cases: [string, number][] = [
    ["1H", 3_600_000],
    ["2M", 120_000],
    ["30S", 30_000],
    ["20000m", 20_000],
    // Not whole milliseconds: rounded up, never shortened.
    ["20000500u", 20_001],
  ];
  for (const [timeout, ms] of cases) {
    it(`${timeout}: the call succeeds and the process sees at most ${ms} ms left`, async () => {
      const seen = await startWith(timeout);
      expect(seen).to.be.at.most(ms);
      // Far more than any test run takes, far less than the given time: the deadline got through.
      expect(seen).to.be.above(ms - 10_000);
    });
  }

  it("99999999n (the longest nanosecond timeout, 100 ms rounded up) is never INTERNAL", async () => {
    // 100 ms is short on a busy machine: the deadline may pass first, which is its right.
    n += 1;
    const outcome = await rawCall(session, {
      path: "/test.lab.v1.Counter/Start",
      headers: { "grpc-timeout": "99999999n" },
      body: [grpcFrame(encodeOp({ key: `timeout-${n}` }))],
    });
    expect([0, 4], outcome.grpcMessage).to.include(outcome.grpcStatus);
    if (outcome.grpcStatus === 0) {
      expect(Number(decodeResult(outcome.data.subarray(5)).deadline_ms)).to.be.within(0, 100);
    }
  });

  it("a timeout beyond what timers hold (99999999H) is no deadline, not a failure", async () => {
    expect(await startWith("99999999H")).to.equal(-1);
  });

  it("parses to whole milliseconds, at least 1, and drops the unrepresentable", () => {
    const now = 1_000_000;
    expect(parseGrpcTimeout("1u", now)).to.equal(now + 1);
    expect(parseGrpcTimeout("1n", now)).to.equal(now + 1);
    expect(parseGrpcTimeout("0m", now)).to.equal(now + 1);
    expect(parseGrpcTimeout("1001u", now)).to.equal(now + 2);
    expect(parseGrpcTimeout("99999999n", now)).to.equal(now + 100);
    expect(parseGrpcTimeout("99999999u", now)).to.equal(now + 100_000);
    expect(parseGrpcTimeout("596H", now)).to.equal(now + 596 * 3_600_000);
    expect(parseGrpcTimeout("597H", now)).to.equal(undefined);
    expect(parseGrpcTimeout(`${MAX_DEADLINE_MS}m`, now)).to.equal(undefined);
    expect(parseGrpcTimeout("1.5S", now)).to.equal(undefined);
    expect(parseGrpcTimeout("123456789S", now)).to.equal(undefined);
    for (const unit of "HMSmun") {
      const deadline = parseGrpcTimeout(`7${unit}`, now.valueOf() + 0.5);
      expect(Number.isSafeInteger(deadline), unit).to.equal(true);
    }
  });
});
