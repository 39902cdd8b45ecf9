import type { MachineInfo } from "./machine-info.js";
import { RSS_GROWTH_TARGET, RSS_WINDOW_SECONDS, type SoakResult } from "./soak-run.js";
import type { SoakSettings } from "./soak-settings.js";

const MB = 1024 * 1024;
const fixed = (value: number | undefined, digits: number): string =>
  value === undefined || Number.isNaN(value) ? "–" : value.toFixed(digits);

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const align = header.map((_, i) => (i === 0 ? "---" : "---:"));
  return [header, align, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

export interface SoakResults {
  readonly machine: MachineInfo;
  readonly settings: SoakSettings;
  readonly runs: readonly SoakResult[];
}

/** The soak's results as markdown: printed and written to soak-latest.md. */
export function renderSoakMarkdown(r: SoakResults): string {
  const m = r.machine;
  const s = r.settings;
  const out: string[] = [];
  out.push("# sessionbridge sustained-turnover soak");
  out.push("");
  out.push(
    `${m.date} · ${m.cpuModel}, ${m.cores} cores · Node ${m.node} · load average at start ${m.loadAverageAtStart}`,
  );
  out.push("");
  const window = RSS_WINDOW_SECONDS;
  out.push(
    `${s.sessions} live sessions: ${s.idleSessions} idle ones, opened in the set-up and never called, and ` +
      `${s.activeSessions} active slots, each living through Open, ${s.callsPerSession} calls or one-way messages ` +
      `and End (${fixed(s.sessionLifeSeconds, 0)} s from Open to End), then opening a new session. ` +
      `${s.ratePerSec} calls/s for ${s.seconds} s per store (fixed rate, latency from the schedule), ` +
      `${s.payloadBytes} B payloads. Of every 20 calls: 11 Call (half with an idempotency key, one of them a ` +
      "retry), 5 one-way Notify, 2 End and 2 Open of a new session. Retention 60 s, purges every 30 s. " +
      `RSS growth: the median of the samples (every 5 s) in the last ${window} s against the median in the first ` +
      `${window} s after a ${s.warmupSeconds} s warm-up; the same for the V8 heap in use (no forced GC). What ` +
      `the store holds is level from about ${s.steadyStateSeconds} s (a session's life, the retention and a ` +
      "purge interval).",
  );
  out.push("");
  const verdict = (x: SoakResult): string => {
    if (x.rss.targetMet === undefined) return `– (run shorter than the warm-up and two ${window} s windows)`;
    const early = s.warmupSeconds < s.steadyStateSeconds ? ", warm-up shorter than the steady state" : "";
    return `${x.rss.targetMet ? "met" : "not met"}${early}`;
  };
  out.push(
    table(
      [
        "store",
        "live sessions after warm-up → end",
        "calls in live sessions' journals after warm-up → end",
        "RSS after warm-up → end (MB)",
        "RSS growth",
        "heap after warm-up → end (MB)",
        "heap growth",
        `RSS growth ≤ ${RSS_GROWTH_TARGET * 100} %`,
      ],
      r.runs.map((x) => [
        x.store,
        `${fixed(x.rss.liveSessionsAfterWarmup, 0)} → ${fixed(x.rss.liveSessionsEnd, 0)}`,
        `${fixed(x.rss.liveJournalCallsAfterWarmup, 0)} → ${fixed(x.rss.liveJournalCallsEnd, 0)}`,
        `${fixed(x.rss.afterWarmupBytes / MB, 0)} → ${fixed(x.rss.endBytes / MB, 0)}`,
        `${fixed(x.rss.growth * 100, 1)} %`,
        `${fixed(x.rss.heapAfterWarmupBytes === undefined ? undefined : x.rss.heapAfterWarmupBytes / MB, 0)} → ${fixed(x.rss.heapEndBytes === undefined ? undefined : x.rss.heapEndBytes / MB, 0)}`,
        x.rss.heapGrowth === undefined ? "–" : `${fixed(x.rss.heapGrowth * 100, 1)} %`,
        verdict(x),
      ]),
    ),
  );
  out.push("");
  out.push(
    table(
      [
        "store",
        "calls ok / errors",
        "p50 / p99 / max (ms)",
        "RSS after warm-up → end (MB)",
        "RSS growth",
        "heap after warm-up → end (MB)",
        "heap growth",
        "calls in live sessions' journals after warm-up → end",
        "RSS growth per such call (B)",
        "longest GC pause (ms)",
        "bridge CPU s / 1000 calls (main thread)",
        "bytes written / call",
        "journal bytes / call",
        "write amplification",
        "purges seen",
        "longest call during a purge (ms)",
        "longest call outside purges (ms)",
        "p99 during / outside purges (ms)",
      ],
      r.runs.map((x) => [
        x.store,
        `${x.calls.ok} / ${x.calls.errors}`,
        `${fixed(x.latency.p50Us / 1000, 2)} / ${fixed(x.latency.p99Us / 1000, 2)} / ${fixed(x.latency.maxUs / 1000, 1)}`,
        `${fixed(x.rss.afterWarmupBytes / MB, 0)} → ${fixed(x.rss.endBytes / MB, 0)} (max ${fixed(x.rss.maxAfterWarmupBytes / MB, 0)})`,
        `${fixed(x.rss.growth * 100, 1)} %`,
        `${fixed(x.rss.heapAfterWarmupBytes === undefined ? undefined : x.rss.heapAfterWarmupBytes / MB, 0)} → ${fixed(x.rss.heapEndBytes === undefined ? undefined : x.rss.heapEndBytes / MB, 0)}`,
        x.rss.heapGrowth === undefined ? "–" : `${fixed(x.rss.heapGrowth * 100, 1)} %`,
        `${fixed(x.rss.liveJournalCallsAfterWarmup, 0)} → ${fixed(x.rss.liveJournalCallsEnd, 0)}`,
        fixed(x.rss.growthBytesPerLiveCall, 0),
        fixed(x.longestGcPauseMs, 1),
        `${fixed(x.cpuSecondsPer1000, 3)} (${fixed(x.mainThreadCpuSecondsPer1000, 3)})`,
        fixed(x.writes.bytesPerCall, 0),
        fixed(x.writes.storedBytesPerCall, 0),
        x.writes.amplification === undefined ? "–" : `${x.writes.amplification.toFixed(1)}×`,
        String(x.purges.length),
        fixed(x.longestCallDuringPurgeMs, 1),
        fixed(x.longestCallOutsidePurgeMs, 1),
        `${fixed(x.p99DuringPurgeMs, 1)} / ${fixed(x.p99OutsidePurgeMs, 1)}`,
      ]),
    ),
  );
  out.push("");
  out.push(
    "Bytes written from /proc/<pid>/io of the bridge (all threads: writer, checkpointer). Journal bytes: " +
      "journal rows appended in the run (highest rowid) × their mean size (envelope and keys), read from the " +
      "database. A purge's window runs from its scheduled tick (less 1 s) to its logged end. Calls in live " +
      "sessions' journals: calls answered in the run in sessions still live at the time; the active sessions " +
      "turn over, so the count is level after the first life, and RSS growth per such call is left out (–) " +
      "unless the count grew by a tenth. Live sessions: the idle ones and the active ones whose Open was " +
      "answered and whose End was not.",
  );
  out.push("");
  out.push(
    `The load average at the start (${m.loadAverageAtStart} on ${m.cores} cores) is other work sharing the ` +
      "machine: latencies, GC pauses and the calls seen during purges then measure mostly the wait for a " +
      "core; bytes written, RSS and CPU seconds per call do not depend on it.",
  );
  for (const x of r.runs) {
    out.push("");
    out.push(`## ${x.store}: RSS over time`);
    out.push("");
    const every = Math.max(1, Math.floor(x.samples.length / 12));
    out.push(
      table(
        [
          "seconds",
          "RSS (MB)",
          "heap (MB)",
          "heap reserved (MB)",
          "external (MB)",
          "calls",
          "live sessions",
          "calls in live sessions' journals",
        ],
        x.samples
          .filter((_, i) => i % every === 0 || i === x.samples.length - 1)
          .map((p) => [
            fixed(p.atSeconds, 0),
            fixed(p.rssBytes / MB, 1),
            fixed(p.heapUsedBytes === undefined ? undefined : p.heapUsedBytes / MB, 1),
            fixed(p.heapTotalBytes === undefined ? undefined : p.heapTotalBytes / MB, 1),
            fixed(p.externalBytes === undefined ? undefined : p.externalBytes / MB, 1),
            String(p.calls),
            String(p.liveSessions),
            String(p.liveJournalCalls),
          ]),
      ),
    );
    // Where RSS sits (bench/soak-memory.ts): V8's spaces reserved against used, and the
    // process's mappings, so growth can be placed in V8's heap or in malloc's.
    const placed = x.samples.filter((p) => p.resident !== undefined && p.heapSpaces !== undefined);
    if (placed.length === 0) continue;
    const space = (p: (typeof placed)[number], name: string, of: "sizeBytes" | "usedBytes"): number =>
      p.heapSpaces?.find((s) => s.name === name)?.[of] ?? 0;
    out.push("");
    out.push(`## ${x.store}: where RSS sits`);
    out.push("");
    out.push(
      "Old, large-object and new space: reserved / used (MB), from v8.getHeapSpaceStatistics. RSS by mapping " +
        "from /proc/<pid>/smaps: malloc's brk heap, other anonymous memory (V8's pages, other arenas, " +
        "large mallocs) and file pages. Outside V8: RSS less V8's reserved heap and its external memory.",
    );
    out.push("");
    const step = Math.max(1, Math.floor(placed.length / 12));
    out.push(
      table(
        [
          "seconds",
          "RSS",
          "old space",
          "large objects",
          "new space",
          "code + map + other",
          "array buffers",
          "brk heap",
          "other anon",
          "file",
          "anon mappings",
          "outside V8",
        ],
        placed
          .filter((_, i) => i % step === 0 || i === placed.length - 1)
          .map((p) => {
            const named = ["old_space", "large_object_space", "new_space", "new_large_object_space"];
            const others = (p.heapSpaces ?? [])
              .filter((s) => !named.includes(s.name))
              .reduce((sum, s) => sum + s.sizeBytes, 0);
            const r = p.resident as NonNullable<typeof p.resident>;
            return [
              fixed(p.atSeconds, 0),
              fixed(p.rssBytes / MB, 1),
              `${fixed(space(p, "old_space", "sizeBytes") / MB, 1)} / ${fixed(space(p, "old_space", "usedBytes") / MB, 1)}`,
              `${fixed(space(p, "large_object_space", "sizeBytes") / MB, 1)} / ${fixed(space(p, "large_object_space", "usedBytes") / MB, 1)}`,
              `${fixed(space(p, "new_space", "sizeBytes") / MB, 1)} / ${fixed(space(p, "new_space", "usedBytes") / MB, 1)}`,
              fixed(others / MB, 1),
              fixed(p.arrayBuffersBytes === undefined ? undefined : p.arrayBuffersBytes / MB, 1),
              fixed(r.brkHeapBytes / MB, 1),
              fixed(r.otherAnonBytes / MB, 1),
              fixed(r.fileBytes / MB, 1),
              String(r.anonMappings),
              fixed(
                p.heapTotalBytes === undefined || p.externalBytes === undefined
                  ? undefined
                  : (p.rssBytes - p.heapTotalBytes - p.externalBytes) / MB,
                1,
              ),
            ];
          }),
      ),
    );
  }
  out.push("");
  return out.join("\n");
}
