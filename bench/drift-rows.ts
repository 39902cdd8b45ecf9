import type { DriftRow } from "./drift.js";
import type { NatsBenchResult } from "./nats-bench.js";
import type { PathKind, ScenarioResult } from "./scenarios.js";

/**
 * What work per call each path gives the echo server and the load generator, for drift.ts.
 * From quiet runs: the grpc-go echo costs the same per call within −12 % to +6 % whether
 * the generator, nginx or a bridge calls it, and the generator the same whatever it calls
 * over gRPC. Not comparable, so left without a kind: the grpc-js echo (direct-node, the
 * only one), the connect-go echo behind the bridge's Connect outbound (about 30 % cheaper
 * per call than called straight by the generator, in both runs with the HTTP rows), and
 * the generator speaking Connect JSON (no direct row does).
 */
const KINDS: Readonly<Record<PathKind, { echo?: string; generator?: string }>> = {
  direct: { echo: "grpc-go", generator: "grpc" },
  "direct-node": { generator: "grpc" },
  nginx: { echo: "grpc-go", generator: "grpc" },
  "bridged-passthrough": { echo: "grpc-go", generator: "grpc" },
  "bridged-passthrough-x2": { echo: "grpc-go", generator: "grpc" },
  "bridged-memory-shared": { echo: "grpc-go", generator: "grpc" },
  "bridged-memory": { echo: "grpc-go", generator: "grpc" },
  "bridged-sqlite-shared": { echo: "grpc-go", generator: "grpc" },
  "bridged-sqlite": { echo: "grpc-go", generator: "grpc" },
  "http-grpc-direct": { echo: "grpc-go", generator: "grpc" },
  "http-json-bridged": { echo: "grpc-go" },
  "http-connect-direct": { generator: "connect-proto" },
  "http-connect-bridged": { generator: "connect-proto" },
};

/**
 * The reference row of each kind, by preference: gRPC rows against the direct grpc-go row
 * (or its repetition among the HTTP rows when BENCH_ONLY=http left it out), Connect rows
 * against the direct Connect row, NATS against direct NATS.
 */
export const DRIFT_REFERENCES: Readonly<Record<string, readonly string[]>> = {
  "echo grpc-go": ["direct/fixed", "http-grpc-direct/fixed"],
  "generator grpc": ["direct/fixed", "http-grpc-direct/fixed"],
  "generator connect-proto": ["http-connect-direct/fixed"],
  "echo nats": ["nats/direct"],
  "generator nats": ["nats/direct"],
};

/** The NATS rows' probe group (run.ts probes before "nats"). */
export const NATS_GROUP = "nats";

export function driftRows(
  scenarios: readonly ScenarioResult[],
  nats: NatsBenchResult | undefined,
): DriftRow[] {
  const rows: DriftRow[] = scenarios.map((s) => ({
    id: s.id,
    group: s.path,
    fixedRate: s.mode === "fixed",
    echoKind: KINDS[s.path].echo,
    generatorKind: KINDS[s.path].generator,
    echoCpuSecondsPer1000: s.echo.cpuSecondsPer1000,
    generatorCpuSecondsPer1000: s.generator.cpuSecondsPer1000,
  }));
  // The NATS client runs in the bench process: it is the NATS rows' generator.
  for (const p of nats?.paths ?? []) {
    rows.push({
      id: `nats/${p.path}`,
      group: NATS_GROUP,
      fixedRate: true,
      echoKind: "nats",
      generatorKind: "nats",
      echoCpuSecondsPer1000: p.fixedRate.echoCpuSecondsPer1000,
      generatorCpuSecondsPer1000: p.fixedRate.clientCpuSecondsPer1000,
    });
  }
  return rows;
}
