import { expect } from "chai";
import { expandRequest, headerMismatch, mismatch } from "../../conformance/runner/expectation.js";
import { timeoutMs } from "../../conformance/runner/lab-wire.js";
import { globToRegExp, permutationsOf } from "../../conformance/runner/runner.js";
import { parseKnownFailing, type TargetFile } from "../../conformance/runner/target-file.js";

describe("conformance runner parts", () => {
  it("reads every grpc-timeout unit, rounding up to whole milliseconds (S15)", () => {
    expect(timeoutMs("1H")).to.equal(3_600_000);
    expect(timeoutMs("2M")).to.equal(120_000);
    expect(timeoutMs("3S")).to.equal(3000);
    expect(timeoutMs("250m")).to.equal(250);
    expect(timeoutMs("1500u")).to.equal(2);
    expect(timeoutMs("1n")).to.equal(1);
    expect(() => timeoutMs("5x")).to.throw(/grpc-timeout/);
  });

  it("matches replies as subsets, with proto3 JSON's omitted defaults and matchers", () => {
    expect(mismatch({ log: [] }, {})).to.equal(undefined);
    expect(mismatch({ log: ["a"] }, { log: ["a", "b"] })).to.match(/expected 1 entries/);
    expect(mismatch({ observed: { seq: 1 } }, { observed: { seq: "1" } })).to.equal(undefined);
    expect(mismatch({ n: { $gt: 5, $lte: 10 } }, { n: 7 })).to.equal(undefined);
    expect(mismatch({ n: { $gt: 5 } }, { n: 5 })).to.match(/> 5/);
    expect(mismatch({ id: { $len: 22 } }, { id: "x".repeat(22) })).to.equal(undefined);
    expect(mismatch({ replayed: true }, {})).to.match(/expected true/);
    const payload = expandRequest({ p: { $bytes: 3 } }) as { p: string };
    expect(mismatch({ p: { $bytes: 3 } }, payload)).to.equal(undefined);
  });

  it("matches headers by value or by presence: a sessionless answer carries no sb-session-id", () => {
    expect(headerMismatch("a", "a")).to.equal(undefined);
    expect(headerMismatch("a", "b")).to.equal("a, got b");
    expect(headerMismatch("", undefined)).to.equal(", got none");
    expect(headerMismatch({ $present: false }, undefined)).to.equal(undefined);
    expect(headerMismatch({ $present: false }, "AAAAAAAAAAAAAAAAAAAAAA")).to.match(/^none, got/);
    expect(headerMismatch({ $present: true }, "")).to.equal(undefined);
    expect(headerMismatch({ $present: true }, undefined)).to.equal("a value, got none");
  });

  it("reads known-failing entries with and without permutations", () => {
    const list = parseKnownFailing("# comment\na/b\nc/d bridged http→*\ne/f direct grpc # why\n");
    expect(list.has("a/b", "direct nats")).to.equal(true);
    expect(list.has("c/d", "bridged http→nats")).to.equal(true);
    expect(list.has("c/d", "bridged grpc→http")).to.equal(false);
    expect(list.has("e/f", "direct grpc")).to.equal(true);
    expect(list.has("e/f", "direct http")).to.equal(false);
    expect(list.has("x/y", "direct grpc")).to.equal(false);
  });

  it("plans direct runs per served transport and bridged runs per inbound × served outbound", () => {
    const target = { transports: ["grpc", "nats"] } as unknown as TargetFile;
    const all = permutationsOf({ target, mode: "all" });
    expect(all.filter((p) => p.mode === "direct").map((p) => p.inbound)).to.deep.equal(["grpc", "nats"]);
    expect(all.filter((p) => p.mode === "bridged")).to.have.length(6);
    expect(permutationsOf({ target, mode: "bridged", inbound: ["http"], outbound: ["nats"] })).to.deep.equal([
      { mode: "bridged", inbound: "http", outbound: "nats" },
    ]);
  });

  it("turns case globs into anchored patterns", () => {
    expect(globToRegExp("sequence/*").test("sequence/gap-refused")).to.equal(true);
    expect(globToRegExp("sequence/*").test("faults/code-aborted")).to.equal(false);
    expect(globToRegExp("**").test("a/b")).to.equal(true);
    expect(globToRegExp("faults/code-?borted").test("faults/code-aborted")).to.equal(true);
  });
});
