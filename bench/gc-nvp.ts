import { existsSync, readFileSync } from "node:fs";

/**
 * V8's --trace-gc-nvp lines, "[pid:isolate]   1234 ms: pause=… gc=s …": one per
 * collection, the time counted from the isolate's start, then name=value pairs (pause and
 * the main thread's phases in ms, sizes in bytes). gc=s is a scavenge, gc=mc a
 * mark-compact's atomic pause.
 */
export interface NvpGc {
  readonly atMs: number;
  readonly fields: Readonly<Record<string, number | string>>;
}

export function readNvp(file: string): NvpGc[] {
  if (!existsSync(file)) return [];
  const out: NvpGc[] = [];
  for (const line of readFileSync(file, "utf8").split("\n")) {
    const m = /^\[\d+:0x[0-9a-f]+\]\s+(\d+) ms: (pause=.*)$/.exec(line);
    if (m === null) continue;
    const fields: Record<string, number | string> = {};
    for (const pair of (m[2] as string).split(" ")) {
      const eq = pair.indexOf("=");
      if (eq < 0) continue;
      const value = pair.slice(eq + 1).replace(/%$/, "");
      const n = Number(value);
      fields[pair.slice(0, eq)] = Number.isFinite(n) ? n : value;
    }
    out.push({ atMs: Number(m[1]), fields });
  }
  return out;
}

// incremental* are the marking steps before the pause, background.* other threads' time:
// neither is part of the main thread's pause.
const NOT_A_PHASE =
  /size|speed|throughput|ratio|rate|count|allocated|promoted|survived|nodes_|holes|reduce_memory|chunks|steps|^background|^incremental|^pause$|^mutator$|^gc$/;

/** The main thread's phases of one pause, largest first: [name, ms]. */
export function phasesOf(fields: NvpGc["fields"]): [string, number][] {
  return Object.entries(fields)
    .filter((e): e is [string, number] => typeof e[1] === "number" && !NOT_A_PHASE.test(e[0]))
    .sort((a, b) => b[1] - a[1]);
}

export const phaseText = (fields: NvpGc["fields"], top = 8): string =>
  phasesOf(fields)
    .filter(([, ms]) => ms >= 0.3)
    .slice(0, top)
    .map(([k, v]) => `${k} ${v.toFixed(1)}`)
    .join(", ");

/** Per kind of collection: count, pause total and longest, and each phase's total (ms). */
export interface NvpSummary {
  readonly count: number;
  readonly pauseTotalMs: number;
  readonly pauseMaxMs: number;
  readonly over5ms: number;
  readonly survivedBytes: number;
  readonly promotedBytes: number;
  readonly phasesMs: Readonly<Record<string, number>>;
}

export function summariseNvp(gcs: readonly NvpGc[]): Record<string, NvpSummary> {
  const out: Record<string, NvpSummary> = {};
  for (const g of gcs) {
    const kind = String(g.fields.gc);
    const pause = Number(g.fields.pause);
    const s = out[kind] ?? {
      count: 0,
      pauseTotalMs: 0,
      pauseMaxMs: 0,
      over5ms: 0,
      survivedBytes: 0,
      promotedBytes: 0,
      phasesMs: {},
    };
    const phases: Record<string, number> = { ...s.phasesMs };
    for (const [k, v] of phasesOf(g.fields)) phases[k] = (phases[k] ?? 0) + v;
    out[kind] = {
      count: s.count + 1,
      pauseTotalMs: s.pauseTotalMs + pause,
      pauseMaxMs: Math.max(s.pauseMaxMs, pause),
      over5ms: s.over5ms + (pause > 5 ? 1 : 0),
      survivedBytes: s.survivedBytes + Number(g.fields.new_space_survived ?? 0),
      promotedBytes: s.promotedBytes + Number(g.fields.promoted ?? 0),
      phasesMs: phases,
    };
  }
  return out;
}
