import { expect } from "chai";
import {
  assessDrift,
  beyond,
  chooseReferences,
  type DriftRow,
  driftWarnings,
  type SpeedSample,
  speedSeries,
} from "./drift.js";
import { DRIFT_REFERENCES, driftRows } from "./drift-rows.js";
import type { NatsBenchResult } from "./nats-bench.js";
import type { ScenarioResult } from "./scenarios.js";

const grpcRow = (id: string, echo: number, generator: number, fixedRate = true): DriftRow => ({
  id,
  group: id.split("/")[0] as string,
  fixedRate,
  echoKind: "grpc-go",
  generatorKind: "grpc",
  echoCpuSecondsPer1000: echo,
  generatorCpuSecondsPer1000: generator,
});

const sample = (before: string, scale: number, atSeconds = 0): SpeedSample => ({
  atSeconds,
  before,
  computeMs: 20 * scale,
  memoryMs: 30 * scale,
  kernelMs: 15 * scale,
});

describe("bench drift", () => {
  describe("limits", () => {
    it("flags departures beyond the limit either way, on the same scale slower and faster", () => {
      expect(beyond(1.15, 0.15)).to.equal(false);
      expect(beyond(1.16, 0.15)).to.equal(true);
      expect(beyond(1 / 1.15, 0.15)).to.equal(false);
      expect(beyond(1 / 1.16, 0.15)).to.equal(true);
      expect(beyond(Number.NaN, 0.15)).to.equal(false);
    });
  });

  describe("speed probes", () => {
    it("are speed relative to the first probe, the parts combined by geometric mean", () => {
      const series = speedSeries([
        sample("direct", 1),
        { atSeconds: 60, before: "nginx", computeMs: 40, memoryMs: 30, kernelMs: 15 },
        sample("end", 1.25, 500),
      ]);
      expect(series.map((p) => p.before)).to.deep.equal(["direct", "nginx", "end"]);
      expect(series[0]?.speed).to.equal(1);
      expect(series[0]?.flagged).to.equal(false);
      expect(series[1]?.compute).to.equal(0.5);
      expect(series[1]?.memory).to.equal(1);
      expect(series[1]?.speed).to.be.closeTo(Math.cbrt(0.5), 1e-12);
      expect(series[1]?.flagged).to.equal(true);
      // Every part 25 % slower: speed 0.8, beyond ±15 %.
      expect(series[2]?.speed).to.be.closeTo(0.8, 1e-12);
      expect(series[2]?.flagged).to.equal(true);
    });

    it("is empty when no probe ran", () => {
      expect(speedSeries([])).to.deep.equal([]);
    });
  });

  describe("references", () => {
    it("take the first listed row the run measured at the fixed rate", () => {
      const rows = [
        grpcRow("direct/unthrottled", 0.03, 0.05, false),
        grpcRow("http-grpc-direct/fixed", 0.2, 0.3),
        grpcRow("direct/fixed", 0.18, 0.29),
      ];
      expect(chooseReferences(rows, DRIFT_REFERENCES)["echo grpc-go"]?.id).to.equal("direct/fixed");
      // BENCH_ONLY=http: the direct row's repetition among the HTTP rows.
      expect(chooseReferences(rows.slice(0, 2), DRIFT_REFERENCES)["generator grpc"]?.id).to.equal(
        "http-grpc-direct/fixed",
      );
      expect(chooseReferences(rows.slice(0, 1), DRIFT_REFERENCES)["echo grpc-go"]).to.equal(undefined);
    });

    it("compare gRPC rows with direct grpc-go, Connect with Connect, NATS with NATS", () => {
      const figures = (cpu: number) => ({
        cpuSeconds: cpu * 10,
        cpuCores: cpu,
        cpuSecondsPer1000: cpu,
        rssPeakBytes: undefined,
        rssEndBytes: undefined,
        writtenBytes: undefined,
        writtenBytesPerCall: undefined,
      });
      const scenario = (path: string, mode: string, echo: number, generator: number): ScenarioResult =>
        ({
          id: `${path}/${mode}`,
          path,
          mode,
          echo: figures(echo),
          generator: figures(generator),
        }) as unknown as ScenarioResult;
      const natsPath = (path: "direct" | "bridged-memory", echo: number, client: number) => ({
        path,
        fixedRate: { echoCpuSecondsPer1000: echo, clientCpuSecondsPer1000: client },
      });
      const nats = {
        paths: [natsPath("direct", 0.1, 0.4), natsPath("bridged-memory", 0.13, 0.41)],
      } as unknown as NatsBenchResult;
      const report = assessDrift(
        driftRows(
          [
            scenario("direct", "fixed", 0.2, 0.3),
            scenario("direct", "unthrottled", 0.03, 0.05),
            scenario("direct-node", "fixed", 0.5, 0.3),
            scenario("bridged-memory", "fixed", 0.2, 0.3),
            scenario("bridged-memory", "unthrottled", 0.09, 0.1),
            scenario("http-json-bridged", "fixed", 0.2, 0.9),
            scenario("http-connect-direct", "fixed", 0.3, 0.2),
            scenario("http-connect-bridged", "fixed", 0.2, 0.21),
          ],
          nats,
        ),
        DRIFT_REFERENCES,
        [],
      );
      const row = (id: string) => report.rows.find((r) => r.id === id);
      expect(report.references).to.deep.equal({
        "echo grpc-go": "direct/fixed",
        "generator grpc": "direct/fixed",
        "generator connect-proto": "http-connect-direct/fixed",
        "echo nats": "nats/direct",
        "generator nats": "nats/direct",
      });
      // The reference itself, and unthrottled rows, are not compared.
      expect(row("direct/fixed")?.echo).to.equal(undefined);
      expect(row("direct/unthrottled")?.generator).to.equal(undefined);
      expect(row("bridged-memory/unthrottled")?.echo).to.equal(undefined);
      // The grpc-js echo has no row of its kind; its generator is the gRPC one.
      expect(row("direct-node/fixed")?.echo).to.equal(undefined);
      expect(row("direct-node/fixed")?.generator?.reference).to.equal("direct/fixed");
      expect(row("bridged-memory/fixed")?.echo?.ratio).to.equal(1);
      // Connect JSON: its echo is the grpc-go one, its generator has no direct row.
      expect(row("http-json-bridged/fixed")?.echo?.reference).to.equal("direct/fixed");
      expect(row("http-json-bridged/fixed")?.generator).to.equal(undefined);
      // The connect-go echo behind the bridge is not compared with the one called straight.
      expect(row("http-connect-bridged/fixed")?.echo).to.equal(undefined);
      expect(row("http-connect-bridged/fixed")?.generator?.reference).to.equal("http-connect-direct/fixed");
      expect(row("http-connect-bridged/fixed")?.generator?.ratio).to.be.closeTo(1.05, 1e-12);
      expect(row("nats/bridged-memory")?.echo?.reference).to.equal("nats/direct");
      expect(row("nats/bridged-memory")?.echo?.ratio).to.be.closeTo(1.3, 1e-12);
      expect(driftWarnings(report)).to.deep.equal([
        "nats/bridged-memory: echo CPU per call +30 % against nats/direct (0.130 vs 0.100 s / 1000; limit ±15 %)",
      ]);
    });
  });

  describe("row flags", () => {
    // The run that showed it: the echo 0.184 s per 1000 calls in the direct row, 0.250 in
    // the memory exclusive row; the generator 0.288 and 0.352.
    const rows = [
      grpcRow("direct/fixed", 0.184, 0.288),
      grpcRow("bridged-passthrough/fixed", 0.203, 0.287),
      grpcRow("bridged-memory/fixed", 0.25, 0.352),
      grpcRow("bridged-memory/unthrottled", 0.055, 0.095, false),
      grpcRow("bridged-sqlite/fixed", 0.19, 0.36),
    ];

    it("flags a row whose echo or generator CPU per call is beyond its limit, and only those", () => {
      const report = assessDrift(rows, DRIFT_REFERENCES, []);
      const flagged = report.rows.filter((r) => r.reasons.length > 0).map((r) => r.id);
      // passthrough +10 % echo: within ±15 %; memory +36 % echo; sqlite +25 % generator (limit ±20 %).
      expect(flagged).to.deep.equal(["bridged-memory/fixed", "bridged-sqlite/fixed"]);
      const memory = report.rows.find((r) => r.id === "bridged-memory/fixed");
      expect(memory?.echo?.flagged).to.equal(true);
      expect(memory?.generator?.flagged).to.equal(true);
      expect(memory?.echo?.ratio).to.be.closeTo(0.25 / 0.184, 1e-12);
      const sqlite = report.rows.find((r) => r.id === "bridged-sqlite/fixed");
      expect(sqlite?.echo?.flagged).to.equal(false);
      expect(sqlite?.generator?.flagged).to.equal(true);
      expect(driftWarnings(report)[1]).to.equal(
        "bridged-sqlite/fixed: generator CPU per call +25 % against direct/fixed (0.360 vs 0.288 s / 1000; limit ±20 %)",
      );
    });

    it("flags a row cheaper than its reference as well", () => {
      const report = assessDrift(
        [grpcRow("direct/fixed", 0.2, 0.3), grpcRow("nginx/fixed", 0.16, 0.3)],
        DRIFT_REFERENCES,
        [],
      );
      expect(driftWarnings(report)).to.deep.equal([
        "nginx/fixed: echo CPU per call −20 % against direct/fixed (0.160 vs 0.200 s / 1000; limit ±15 %)",
      ]);
    });

    it("flags every row of a group whose probe before or after shows another speed", () => {
      const report = assessDrift(rows, DRIFT_REFERENCES, [
        sample("direct", 1, 0),
        sample("bridged-passthrough", 1.05, 60),
        sample("bridged-memory", 1.1, 120),
        sample("bridged-sqlite", 1.3, 180),
        sample("end", 1.3, 240),
      ]);
      const byId = new Map(report.rows.map((r) => [r.id, r]));
      expect(byId.get("direct/fixed")?.reasons).to.deep.equal([]);
      expect(byId.get("bridged-passthrough/fixed")?.reasons).to.deep.equal([]);
      expect(byId.get("bridged-passthrough/fixed")?.speedBefore).to.be.closeTo(1 / 1.05, 1e-12);
      // The memory group: its own probe within the limit, the one after it (before sqlite) not.
      expect(byId.get("bridged-memory/unthrottled")?.speedAfter).to.be.closeTo(1 / 1.3, 1e-12);
      expect(byId.get("bridged-memory/unthrottled")?.reasons).to.deep.equal([
        "machine speed 0.77× the first probe's in the probe after the row's group (limit ±15 %)",
      ]);
      expect(byId.get("bridged-sqlite/fixed")?.reasons).to.have.length(3);
    });

    it("leaves rows unflagged when no probe ran and no reference was measured", () => {
      const report = assessDrift(rows.slice(1), DRIFT_REFERENCES, []);
      expect(report.references).to.deep.equal({});
      expect(driftWarnings(report)).to.deep.equal([]);
      expect(report.rows.every((r) => r.speedBefore === undefined && r.speedAfter === undefined)).to.equal(
        true,
      );
    });
  });
});
