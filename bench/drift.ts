/**
 * Machine drift within a run. A bridged row is read against the direct and nginx rows of
 * the same run, which is only fair if the machine ran at the same speed for both; a machine
 * can slow down part-way through a run with no other load and no steal to show for it (its
 * host's frequency, a busy sibling hyperthread or memory bus). Two measurements show it:
 *
 * - the speed probe (speed-probe.ts), a fixed piece of CPU work run at the start, before
 *   every row group and at the end, as speed relative to the first probe;
 * - per fixed-rate row, the CPU per 1000 calls of the echo server and of the load
 *   generator, which do the same work per call in every row of a kind, against the run's
 *   reference row of that kind.
 *
 * Rows beyond the limits are flagged (informational, like windows with other load: the
 * run does not fail on them).
 */

/** What drift flags: relative departures, either way, from the reference. */
export interface DriftLimits {
  /** The echo server's CPU per call against the reference row's. */
  readonly echo: number;
  /**
   * The generator's. A Node process with its own collections: on quiet runs it varied by up
   * to 20 % between identical rows, the echo by up to 12 %.
   */
  readonly generator: number;
  /** The speed probe against the first probe of the run. */
  readonly speed: number;
}

export const DRIFT_LIMITS: DriftLimits = { echo: 0.15, generator: 0.2, speed: 0.15 };

/** One run of the speed probe, in CPU milliseconds per part, and what came after it. */
export interface SpeedSample {
  /** Seconds since the run started. */
  readonly atSeconds: number;
  /** The row group measured next (a path such as "bridged-memory", "nats"), or "end". */
  readonly before: string;
  readonly computeMs: number;
  readonly memoryMs: number;
  readonly kernelMs: number;
}

/** A probe as speed relative to the run's first probe: above 1 faster, below 1 slower. */
export interface SpeedPoint extends SpeedSample {
  readonly compute: number;
  readonly memory: number;
  readonly kernel: number;
  /** Geometric mean of the three parts. */
  readonly speed: number;
  readonly flagged: boolean;
}

/** Outside [1 / (1 + limit), 1 + limit]: the same limit for slower and faster. */
export const beyond = (ratio: number, limit: number): boolean =>
  Number.isFinite(ratio) && (ratio > 1 + limit || ratio < 1 / (1 + limit));

export function speedSeries(
  samples: readonly SpeedSample[],
  limits: DriftLimits = DRIFT_LIMITS,
): SpeedPoint[] {
  const first = samples[0];
  if (first === undefined) return [];
  return samples.map((s) => {
    const compute = first.computeMs / s.computeMs;
    const memory = first.memoryMs / s.memoryMs;
    const kernel = first.kernelMs / s.kernelMs;
    const speed = Math.cbrt(compute * memory * kernel);
    return { ...s, compute, memory, kernel, speed, flagged: beyond(speed, limits.speed) };
  });
}

/**
 * A row as drift sees it. Rows of the same echo kind give the echo server the same work
 * per call, rows of the same generator kind the generator; a kind is undefined where no
 * other row does the same work (e.g. the grpc-js echo of direct-node).
 */
export interface DriftRow {
  readonly id: string;
  /** The row group it belongs to: the probe run just before that group is its "before". */
  readonly group: string;
  /**
   * Fixed-rate rows only: unthrottled, the CPU per call of the echo and the generator
   * depends on the throughput (more calls per system call when more are in flight).
   */
  readonly fixedRate: boolean;
  readonly echoKind: string | undefined;
  readonly generatorKind: string | undefined;
  readonly echoCpuSecondsPer1000: number | undefined;
  readonly generatorCpuSecondsPer1000: number | undefined;
}

/** One process's CPU per 1000 calls against the same process in the reference row. */
export interface AgainstReference {
  readonly reference: string;
  readonly cpuSecondsPer1000: number;
  readonly referenceCpuSecondsPer1000: number;
  readonly ratio: number;
  readonly flagged: boolean;
}

export interface RowDrift {
  readonly id: string;
  /** undefined: not compared (unthrottled, no reference of its kind, or it is the reference). */
  readonly echo: AgainstReference | undefined;
  readonly generator: AgainstReference | undefined;
  /** The probes just before and just after the row's group; undefined when none ran. */
  readonly speedBefore: number | undefined;
  readonly speedAfter: number | undefined;
  /** Why the row is flagged; empty when it is not. */
  readonly reasons: readonly string[];
}

export interface DriftReport {
  readonly limits: DriftLimits;
  readonly probes: readonly SpeedPoint[];
  /** By kind (e.g. "echo grpc-go"), the row every row of that kind was compared with. */
  readonly references: Readonly<Record<string, string>>;
  readonly rows: readonly RowDrift[];
}

/**
 * The reference of each kind: the first fixed-rate row, in the order the candidates are
 * listed, that this run measured (BENCH_ONLY may have left the first candidate out).
 */
export function chooseReferences(
  rows: readonly DriftRow[],
  candidates: Readonly<Record<string, readonly string[]>>,
): Record<string, DriftRow> {
  const out: Record<string, DriftRow> = {};
  for (const [kind, ids] of Object.entries(candidates)) {
    for (const id of ids) {
      const row = rows.find((r) => r.id === id && r.fixedRate);
      if (row !== undefined) {
        out[kind] = row;
        break;
      }
    }
  }
  return out;
}

const pct = (ratio: number): string => `${ratio >= 1 ? "+" : "−"}${Math.abs((ratio - 1) * 100).toFixed(0)} %`;

export function assessDrift(
  rows: readonly DriftRow[],
  candidates: Readonly<Record<string, readonly string[]>>,
  samples: readonly SpeedSample[],
  limits: DriftLimits = DRIFT_LIMITS,
): DriftReport {
  const probes = speedSeries(samples, limits);
  const references = chooseReferences(rows, candidates);
  const against = (row: DriftRow, who: "echo" | "generator"): AgainstReference | undefined => {
    const kind = who === "echo" ? row.echoKind : row.generatorKind;
    if (!row.fixedRate || kind === undefined) return undefined;
    const reference = references[`${who} ${kind}`];
    if (reference === undefined || reference.id === row.id) return undefined;
    const pick = (r: DriftRow): number | undefined =>
      who === "echo" ? r.echoCpuSecondsPer1000 : r.generatorCpuSecondsPer1000;
    const mine = pick(row);
    const theirs = pick(reference);
    if (mine === undefined || theirs === undefined || !(theirs > 0) || !Number.isFinite(mine))
      return undefined;
    const ratio = mine / theirs;
    return {
      reference: reference.id,
      cpuSecondsPer1000: mine,
      referenceCpuSecondsPer1000: theirs,
      ratio,
      flagged: beyond(ratio, limits[who]),
    };
  };
  const out = rows.map((row): RowDrift => {
    const echo = against(row, "echo");
    const generator = against(row, "generator");
    const at = probes.findIndex((p) => p.before === row.group);
    const before = at < 0 ? undefined : probes[at];
    const after = at < 0 ? undefined : probes[at + 1];
    const reasons: string[] = [];
    for (const [name, a] of [
      ["echo", echo],
      ["generator", generator],
    ] as const) {
      if (a?.flagged === true) {
        reasons.push(
          `${name} CPU per call ${pct(a.ratio)} against ${a.reference} ` +
            `(${a.cpuSecondsPer1000.toFixed(3)} vs ${a.referenceCpuSecondsPer1000.toFixed(3)} s / 1000; limit ±${(limits[name] * 100).toFixed(0)} %)`,
        );
      }
    }
    for (const [name, p] of [
      ["before", before],
      ["after", after],
    ] as const) {
      if (p?.flagged === true) {
        reasons.push(
          `machine speed ${p.speed.toFixed(2)}× the first probe's in the probe ${name} the row's group ` +
            `(limit ±${(limits.speed * 100).toFixed(0)} %)`,
        );
      }
    }
    return {
      id: row.id,
      echo,
      generator,
      speedBefore: before?.speed,
      speedAfter: after?.speed,
      reasons,
    };
  });
  return {
    limits,
    probes,
    references: Object.fromEntries(Object.entries(references).map(([kind, r]) => [kind, r.id])),
    rows: out,
  };
}

/** One line per flagged row, for the report's list and stderr. */
export function driftWarnings(report: DriftReport): string[] {
  return report.rows.filter((r) => r.reasons.length > 0).map((r) => `${r.id}: ${r.reasons.join("; ")}`);
}
