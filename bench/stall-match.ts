/**
 * Which pause made each slow call slow. Reads what a BENCH_TRACE=1 run wrote for one
 * fixed-rate row (results/trace.tmp/<row>.calls.json and .bridge.json, and the bridge's
 * --trace-gc-nvp lines in .bridge-stdout.log when BENCH_BRIDGE_NODE_ARGS asked for them)
 * and, optionally, a --cpu-prof profile of the same bridge (BENCH_CPU_PROF), and prints:
 * the slow calls by the pause or stall that overlapped them most, the events that caught
 * the most slow calls, and the phases of the longest collections.
 *
 *   node dist/bench/stall-match.js bench/results/trace.tmp/bridged-memory-fixed [slow-ms] [profile.cpuprofile]
 *
 * slow-ms defaults to the row's p99 from the schedule. All times are on the monotonic
 * clock (pause-log.ts), the same in the generator and the bridge.
 */
import { readFileSync } from "node:fs";
import type { CallTrace } from "./call-log.js";
import { type NvpGc, phaseText, readNvp } from "./gc-nvp.js";
import type { PauseTrace, TimedPause } from "./pause-log.js";

interface Event {
  readonly who: "bridge" | "generator";
  readonly label: string;
  readonly startMs: number;
  readonly ms: number;
  /** For a stall: the main thread's time on a core and in the run queue, and the GC pause time inside it. */
  readonly runMs?: number;
  readonly waitMs?: number;
  readonly gcMs?: number;
}

const overlap = (a0: number, a1: number, b0: number, b1: number): number =>
  Math.max(0, Math.min(a1, b1) - Math.max(a0, b0));

function gcInside(stall: TimedPause, gc: readonly TimedPause[]): number {
  let ms = 0;
  for (const p of gc) ms += overlap(stall.startMs, stall.startMs + stall.ms, p.startMs, p.startMs + p.ms);
  return ms;
}

/**
 * A stall is labelled by what filled most of it: the bridge's thread in a GC pause, on a
 * core doing other work, or waiting in the run queue for a core (schedstat, pause-log.ts).
 */
function stallLabel(stall: TimedPause, gcMs: number): string {
  const running = (stall.runMs ?? 0) - gcMs;
  const waiting = stall.waitMs ?? 0;
  if (gcMs >= running && gcMs >= waiting) return "stall, mostly GC";
  return running >= waiting ? "stall, running (not GC)" : "stall, waiting for a core";
}

function events(who: Event["who"], trace: PauseTrace): Event[] {
  const out: Event[] = trace.gc.map((p) => ({
    who,
    label: `GC ${p.kind ?? "?"}`,
    startMs: p.startMs,
    ms: p.ms,
  }));
  for (const s of trace.stalls) {
    const gcMs = gcInside(s, trace.gc);
    // The GC part of a stall is already an event of its own: only the rest competes.
    if (s.ms - gcMs < 1) continue;
    out.push({
      who,
      label: stallLabel(s, gcMs),
      startMs: s.startMs,
      ms: s.ms,
      runMs: s.runMs ?? 0,
      waitMs: s.waitMs ?? 0,
      gcMs,
    });
  }
  return out;
}

const fmt = (n: number, digits = 1): string => n.toFixed(digits);
const pct = (sorted: readonly number[], q: number): number =>
  sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;

function table(head: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(" | ")} |`;
  return [line(head), line(head.map(() => "---")), ...rows.map(line)].join("\n");
}

interface CpuProfile {
  readonly nodes: readonly {
    id: number;
    callFrame: { functionName: string; url: string; lineNumber: number };
  }[];
  readonly startTime: number;
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}
/** The functions sampled on the bridge's thread in [fromMs, toMs), by samples. */
function sampledIn(profile: CpuProfile, fromMs: number, toMs: number): string {
  const byId = new Map(profile.nodes.map((n) => [n.id, n.callFrame]));
  const counts = new Map<string, number>();
  let t = profile.startTime / 1000;
  profile.samples.forEach((id, i) => {
    t += (profile.timeDeltas[i] ?? 0) / 1000;
    if (t < fromMs || t >= toMs) return;
    const f = byId.get(id);
    const name =
      f === undefined
        ? "?"
        : `${f.functionName || "(anonymous)"} ${f.url.replace(/^.*\/(dist|node:)/, "$1")}:${f.lineNumber + 1}`;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  });
  return [...counts]
    .sort((a, b) => b[1] - a[1])
    .slice(0, 4)
    .map(([n, c]) => `${n} ×${c}`)
    .join("; ");
}

const [base, slowArg, profileFile] = process.argv.slice(2);
if (base === undefined) {
  process.stderr.write(
    "usage: stall-match <trace base, e.g. bench/results/trace.tmp/bridged-memory-fixed> [slow-ms] [cpuprofile]\n",
  );
  process.exit(2);
}
const { calls, generator } = JSON.parse(readFileSync(`${base}.calls.json`, "utf8")) as {
  calls: CallTrace;
  generator: PauseTrace;
};
const bridge = JSON.parse(readFileSync(`${base}.bridge.json`, "utf8")) as PauseTrace;
const latencies = calls.dueMs.map((due, i) => (calls.endMs[i] as number) - due);
const sorted = [...latencies].sort((a, b) => a - b);
const slowMs = slowArg === undefined ? pct(sorted, 0.99) : Number(slowArg);
const all = [...events("bridge", bridge), ...events("generator", generator)];
const t0 = calls.dueMs[0] ?? 0;

const out: string[] = [];
out.push(
  `${calls.dueMs.length} calls, p50 ${fmt(pct(sorted, 0.5), 2)} ms, p99 ${fmt(pct(sorted, 0.99), 2)} ms from the schedule; slow: ≥ ${fmt(slowMs, 2)} ms`,
);

// Each slow call goes to the event that overlapped it most; less than 1 ms of overlap from
// any is "no pause found". Generator events count over [due, end], the bridge's over
// [sent, end] (before the send the call was not in the bridge).
const byCause = new Map<string, number[]>();
const caught = new Map<Event, number>();
latencies.forEach((latency, i) => {
  if (latency < slowMs) return;
  const due = calls.dueMs[i] as number;
  const sent = calls.sentMs[i] as number;
  const end = calls.endMs[i] as number;
  let best: Event | undefined;
  let bestMs = 1;
  for (const e of all) {
    const from = e.who === "bridge" ? sent : due;
    // A stall competes with the GC pauses inside it only by the rest of its length.
    const share = e.gcMs === undefined ? 1 : Math.max(0, 1 - e.gcMs / e.ms);
    const ms = overlap(from, end, e.startMs, e.startMs + e.ms) * share;
    if (ms > bestMs) {
      best = e;
      bestMs = ms;
    }
  }
  const cause =
    best !== undefined
      ? `${best.who} ${best.label}`
      : sent - due >= slowMs / 2
        ? "generator send lag"
        : "no pause found";
  byCause.set(cause, [...(byCause.get(cause) ?? []), latency]);
  if (best !== undefined) caught.set(best, (caught.get(best) ?? 0) + 1);
});
const slowCount = [...byCause.values()].reduce((n, l) => n + l.length, 0);
out.push("", "Slow calls by the event that overlapped them most:", "");
out.push(
  table(
    ["cause", "slow calls", "%", "median latency (ms)", "max (ms)"],
    [...byCause]
      .sort((a, b) => b[1].length - a[1].length)
      .map(([cause, l]) => {
        const s = [...l].sort((a, b) => a - b);
        return [
          cause,
          String(l.length),
          fmt((100 * l.length) / slowCount),
          fmt(pct(s, 0.5), 2),
          fmt(s.at(-1) ?? 0, 2),
        ];
      }),
  ),
);

const nvp = readNvp(`${base}.bridge-stdout.log`);
/** The nvp line of a bridge GC pause: same start within 3 ms (V8 counts from isolate start). */
const nvpOf = (e: Event): NvpGc | undefined =>
  e.who !== "bridge" || !e.label.startsWith("GC ") || e.label === "GC incremental"
    ? undefined
    : nvp
        .filter((g) => (g.fields.gc === "s") === (e.label === "GC minor"))
        .map((g) => ({ g, off: Math.abs(bridge.originMs + g.atMs - e.startMs) }))
        .filter(({ off }) => off < 10)
        .sort((a, b) => a.off - b.off)[0]?.g;
out.push("", "The events that caught the most slow calls:", "");
out.push(
  table(
    [
      "at (s)",
      "event",
      "ms",
      "on a core / waiting (ms)",
      "slow calls",
      "main-thread phases (--trace-gc-nvp) or samples (--cpu-prof)",
    ],
    [...caught]
      .sort((a, b) => b[1] - a[1])
      .slice(0, 12)
      .map(([e, n]) => {
        const g = nvpOf(e);
        let detail = g === undefined ? "" : `${String(g.fields.gc)}: ${phaseText(g.fields)}`;
        if (detail === "" && profileFile !== undefined) {
          detail = sampledIn(
            JSON.parse(readFileSync(profileFile, "utf8")) as CpuProfile,
            e.startMs,
            e.startMs + e.ms,
          );
        }
        return [
          fmt((e.startMs - t0) / 1000, 3),
          `${e.who} ${e.label}`,
          fmt(e.ms),
          e.runMs === undefined ? "" : `${fmt(e.runMs)} / ${fmt(e.waitMs ?? 0)}`,
          String(n),
          detail,
        ];
      }),
  ),
);

// The bridge's pauses over the window, by kind, and its stalls by what filled them.
const over5 = (list: readonly Event[]): number => list.filter((e) => e.ms > 5).length;
const kinds = new Map<string, Event[]>();
for (const e of all) {
  if (e.who !== "bridge") continue;
  kinds.set(e.label, [...(kinds.get(e.label) ?? []), e]);
}
out.push(
  "",
  "The bridge over the trace (pauses: perf_hooks; stalls: 1 ms timer late by more than 2 ms, GC part left out):",
  "",
);
out.push(
  table(
    ["event", "count", "total ms", "longest ms", "over 5 ms"],
    [...kinds].map(([label, l]) => [
      label,
      String(l.length),
      fmt(l.reduce((n, e) => n + e.ms - (e.gcMs ?? 0), 0)),
      fmt(Math.max(...l.map((e) => e.ms))),
      String(over5(l)),
    ]),
  ),
);

if (nvp.length > 0) {
  const longest = [...nvp].sort((a, b) => Number(b.fields.pause) - Number(a.fields.pause)).slice(0, 8);
  out.push(
    "",
    "The bridge's longest collections (--trace-gc-nvp, the whole run), main-thread phases in ms:",
    "",
  );
  out.push(
    table(
      ["at (ms since start)", "gc", "pause ms", "phases"],
      longest.map((g) => [
        String(g.atMs),
        String(g.fields.gc),
        fmt(Number(g.fields.pause)),
        phaseText(g.fields),
      ]),
    ),
  );
}
process.stdout.write(`${out.join("\n")}\n`);
