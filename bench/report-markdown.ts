import type { BenchResults } from "./bench-results.js";
import type { AgainstReference, DriftReport } from "./drift.js";
import { renderIdleRss } from "./idle-rss.js";
import type { LatencySummary } from "./latency.js";

const MB = 1024 * 1024;
const ms = (us: number | undefined): string => (us === undefined ? "–" : (us / 1000).toFixed(2));
const signedMs = (us: number | undefined): string =>
  us === undefined ? "–" : `${us >= 0 ? "+" : ""}${(us / 1000).toFixed(2)}`;
const fixed = (value: number | undefined, digits: number): string =>
  value === undefined || Number.isNaN(value) ? "–" : value.toFixed(digits);
const mb = (bytes: number | undefined): string => (bytes === undefined ? "–" : (bytes / MB).toFixed(0));

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const align = header.map((_, i) => (i === 0 ? "---" : "---:"));
  return [header, align, ...rows].map((r) => `| ${r.join(" | ")} |`).join("\n");
}

/** The results as markdown tables: printed to stdout and written to latest.md. */
export function renderMarkdown(r: BenchResults): string {
  const m = r.machine;
  const s = r.settings;
  const out: string[] = [];
  out.push("# sessionbridge benchmark");
  out.push("");
  out.push(
    `${m.date} · ${m.cpuModel}, ${m.cores} cores, ${(m.memoryBytes / 1024 ** 3).toFixed(0)} GiB · Node ${m.node}` +
      `${m.bridgeNode === m.node ? "" : ` (bridge children on Node ${m.bridgeNode})`} · ` +
      `${m.platform} ${m.kernel} · load average at start ${m.loadAverageAtStart} · run took ${r.durationSeconds.toFixed(0)} s`,
  );
  out.push("");
  out.push(
    `Unary gRPC, ${s.payloadBytes} B payload each way; exclusive rows over ${s.sessions} sessions round-robin, shared rows on one session. Fixed rate: ${s.ratePerSec} req/s open loop over ${s.fixedConnections} connections ` +
      `(latency from the scheduled send), ≤ ${s.maxInFlight} in flight. Unthrottled: ${s.connections} connections × ` +
      `${s.streamsPerConnection} streams closed loop. ${s.warmupSeconds} s warm-up, ${s.measureSeconds} s measured. Every ` +
      "process (generator, bridge, echo) is its own child; CPU from /proc over the measured window only. " +
      "The machine is small and noisy: read the ratios, which come from one run.",
  );
  out.push("");
  out.push("## Load scenarios");
  out.push("");
  out.push(
    table(
      [
        "scenario",
        "concurrency",
        "throughput (req/s)",
        "p50 (ms)",
        "p99 (ms)",
        "errors",
        "proxy CPU s / 1000 calls",
        "proxy cores",
        "proxy RSS peak / end (MB)",
        "bridge longest GC pause (ms)",
        "bridge GCs: young / full",
        "bridge heap allocated / call (KB)",
        "proxy bytes written / call",
        "echo CPU s / 1000",
        "generator CPU s / 1000",
        "other load (cores)",
      ],
      r.scenarios.map((x) => [
        x.id,
        String(x.load.concurrency),
        fixed(x.load.throughputPerSec, 0),
        ms(x.load.latency.p50Us),
        ms(x.load.latency.p99Us),
        String(x.load.errors),
        fixed(x.bridge?.cpuSecondsPer1000, 3),
        fixed(x.bridge?.cpuCores, 2),
        x.bridge === undefined ? "–" : `${mb(x.bridge.rssPeakBytes)} / ${mb(x.bridge.rssEndBytes)}`,
        fixed(x.bridgeGc?.maxPauseMs, 1),
        x.bridgeGc?.scavenges === undefined ? "–" : `${x.bridgeGc.scavenges} / ${x.bridgeGc.majors ?? 0}`,
        fixed(
          x.bridgeGc?.allocatedBytesPerCall === undefined
            ? undefined
            : x.bridgeGc.allocatedBytesPerCall / 1024,
          1,
        ),
        fixed(x.bridge?.writtenBytesPerCall, 0),
        fixed(x.echo.cpuSecondsPer1000, 3),
        fixed(x.generator.cpuSecondsPer1000, 3),
        fixed(x.machine?.otherCores, 2),
      ]),
    ),
  );
  out.push("");
  out.push(
    "Other load: busy cores of the whole machine (/proc/stat) minus those of the bench's own processes, " +
      "over the same window. Anything well above 0 means other work shared the 2 cores and the row is disturbed. " +
      "Proxy: the bridge, or nginx on the nginx row. GC pauses from perf_hooks in the bridge over the window; " +
      "heap allocated per call from v8.GCProfiler (heap in use before each collection less what the previous one left). " +
      "Bytes written from /proc/<pid>/io (all the proxy's threads, WAL and checkpoints included).",
  );
  out.push("");
  out.push("## Against direct (grpc-go echo) and nginx grpc_pass (same run)");
  out.push("");
  out.push(
    table(
      [
        "bridged path",
        "mode",
        "added p50 (ms)",
        "added p99 (ms)",
        "added p50 / p99 from send (ms)",
        "throughput ÷ direct",
        "throughput ÷ nginx",
      ],
      r.comparisons.map((c) => [
        c.reference === undefined || c.reference === "direct" ? c.path : `${c.path} (÷ ${c.reference})`,
        c.mode,
        signedMs(c.addedP50Us),
        signedMs(c.addedP99Us),
        c.addedServiceP50Us === undefined
          ? "–"
          : `${signedMs(c.addedServiceP50Us)} / ${signedMs(c.addedServiceP99Us)}`,
        fixed(c.throughputRatio, 2),
        fixed(c.throughputRatioToNginx, 2),
      ]),
    ),
  );
  const fixedRuns = r.scenarios.filter((x) => x.load.sendLag !== undefined);
  if (fixedRuns.length > 0) {
    out.push("");
    out.push(
      "Fixed-rate detail: latency from the schedule includes the generator's send lag (timers fire on " +
        "1 ms ticks); latency from the actual send does not.",
    );
    out.push("");
    out.push(
      table(
        [
          "scenario",
          "p50 / p99 from schedule (ms)",
          "p50 / p99 from send (ms)",
          "send lag p50 / p99 (ms)",
          "unsent",
        ],
        fixedRuns.map((x) => [
          x.id,
          pair(x.load.latency),
          pair(x.load.serviceLatency),
          pair(x.load.sendLag),
          String(x.load.unsent),
        ]),
      ),
    );
  }
  const { micro, e2e } = r.routing;
  if (micro !== undefined || e2e !== undefined) {
    out.push("");
    out.push("## Routing at scale");
  }
  if (micro !== undefined) {
    out.push("");
    out.push(
      `In-process: extractCorrelation on a real ${s.payloadBytes} B request plus the registry lookup ` +
        `(ns per call; percentiles of ${micro.batch}-call batch means).`,
    );
    out.push("");
    out.push(
      table(
        [
          "live sessions",
          "route p50 (ns)",
          "route p99 (ns)",
          "lookup alone p50 (ns)",
          "lookup alone p99 (ns)",
        ],
        [
          ...micro.sizes.map((z) => [
            String(z.sessions),
            fixed(z.route.p50Ns, 0),
            fixed(z.route.p99Ns, 0),
            fixed(z.lookup.p50Ns, 0),
            fixed(z.lookup.p99Ns, 0),
          ]),
          [
            "ratio (largest ÷ smallest)",
            fixed(micro.routeP50Ratio, 2),
            "",
            fixed(micro.lookupP50Ratio, 2),
            "",
          ],
        ],
      ),
    );
    out.push("");
    out.push(
      `Engine state per live session (session, correlation index entry, turn queue; V8 heap after a full GC, ` +
        `${Math.max(...micro.sizes.map((z) => z.sessions))} sessions): ${fixed(micro.engineBytesPerSession, 0)} B.`,
    );
  }
  if (e2e !== undefined) {
    out.push("");
    out.push(
      `End to end, memory store, ${e2e.ratePerSec} req/s fixed rate spread over every live session; ` +
        `${e2e.large.open.ok} sessions opened in ${(e2e.large.open.elapsedMs / 1000).toFixed(1)} s ` +
        `(${e2e.large.open.perSec.toFixed(0)} per s, ${e2e.large.open.errors} errors).`,
    );
    out.push("");
    out.push(
      table(
        [
          "live sessions",
          "throughput (req/s)",
          "p50 (ms)",
          "p99 (ms)",
          "p50 from send (ms)",
          "errors",
          "bridge CPU s / 1000 calls",
          "other load (cores)",
        ],
        [
          ...[e2e.small, e2e.large].map((z) => [
            String(z.sessions),
            fixed(z.load.throughputPerSec, 0),
            ms(z.load.latency.p50Us),
            ms(z.load.latency.p99Us),
            ms(z.load.serviceLatency?.p50Us),
            String(z.load.errors),
            fixed(z.bridge?.cpuSecondsPer1000, 3),
            fixed(z.machine?.otherCores, 2),
          ]),
          ["ratio (large ÷ small)", "", fixed(e2e.p50Ratio, 2), fixed(e2e.p99Ratio, 2), "", "", "", ""],
        ],
      ),
    );
    out.push("");
    out.push(
      table(
        ["bridge memory", "before", "after", "per session added"],
        [
          [
            "RSS",
            `${mb(e2e.before.rssBytes)} MB`,
            `${mb(e2e.after.rssBytes)} MB`,
            `${fixed(e2e.rssPerSessionBytes, 0)} B`,
          ],
          [
            "V8 heap used after GC",
            `${mb(e2e.before.heapUsedBytes)} MB`,
            `${mb(e2e.after.heapUsedBytes)} MB`,
            `${fixed(e2e.heapPerSessionBytes, 0)} B`,
          ],
          [
            "V8 heap reserved",
            `${mb(e2e.before.heapTotalBytes)} MB`,
            `${mb(e2e.after.heapTotalBytes)} MB`,
            perSession(e2e.after.heapTotalBytes - e2e.before.heapTotalBytes, e2e.large.open.ok),
          ],
          [
            "external (Buffers, typed arrays)",
            `${mb(e2e.before.externalBytes)} MB`,
            `${mb(e2e.after.externalBytes)} MB`,
            perSession(e2e.after.externalBytes - e2e.before.externalBytes, e2e.large.open.ok),
          ],
        ],
      ),
    );
  }
  if (r.idle !== undefined) {
    out.push("");
    out.push("## Idle bridge (orders example)");
    out.push("");
    out.push(
      "`sessionbridge start` with examples/orders/sessionbridge.yaml (gRPC, HTTP and NATS listeners, SQLite), " +
        "nothing calling it; RSS once it held still for 10 s, at least 30 s after ready (bench/idle-rss.ts).",
    );
    out.push("");
    out.push(renderIdleRss(r.idle));
  }
  if (r.targets.length > 0) {
    out.push("");
    out.push("## DESIGN §6 goals");
    out.push("");
    out.push(
      table(
        ["goal", "measured", "met"],
        r.targets.map((t) => [t.goal, t.measured, t.met === undefined ? "n/a" : t.met ? "yes" : "**no**"]),
      ),
    );
  }
  if (r.warnings.length > 0) {
    out.push("");
    out.push("## Disturbed windows");
    out.push("");
    for (const w of r.warnings) out.push(`- ${w}`);
  }
  if (r.drift !== undefined) out.push(...renderDrift(r.drift, r.drifted ?? []));
  if (r.nats !== undefined) {
    out.push("");
    out.push("## NATS request-reply");
    out.push("");
    out.push(
      `One nats-server; the echo process is a NATS service. direct: client → echo; bridged: client → bridge ` +
        `(NATS inbound, memory store, a session per key) → echo over nats://. ${r.nats.payloadBytes} B payload, ` +
        `${r.nats.measureSeconds} s per window; the client runs in the bench process.`,
    );
    out.push("");
    out.push(
      table(
        [
          "path",
          "fixed rate (req/s)",
          "p50 / p99 at that rate (ms)",
          "closed loop (req/s)",
          "concurrency",
          "p50 / p99 closed loop (ms)",
          "errors",
        ],
        r.nats.paths.map((p) => [
          `nats/${p.path}`,
          String(p.fixedRate.ratePerSec),
          pair(p.fixedRate.latency),
          String(p.closedLoop.throughputPerSec),
          String(p.closedLoop.concurrency),
          pair(p.closedLoop.latency),
          String(p.fixedRate.errors + p.closedLoop.errors),
        ]),
      ),
    );
  }
  out.push("");
  if (r.problems.length === 0)
    out.push("Run passed: no scenario over 0.1% errors, every fixed rate reached.");
  else {
    out.push("## FAILED");
    out.push("");
    for (const p of r.problems) out.push(`- ${p}`);
  }
  out.push("");
  return out.join("\n");
}

const percent = (limit: number): string => `±${(limit * 100).toFixed(0)} %`;

function ratioCell(a: AgainstReference | undefined, isReference: boolean): string {
  if (isReference) return "reference";
  if (a === undefined) return "–";
  const text = `${a.ratio.toFixed(2)} (${a.cpuSecondsPer1000.toFixed(3)} / ${a.referenceCpuSecondsPer1000.toFixed(3)})`;
  return a.flagged ? `**${text}**` : text;
}

/** The speed probes over the run, each row against its reference, and the rows flagged. */
function renderDrift(d: DriftReport, flagged: readonly string[]): string[] {
  const out: string[] = [];
  const isReference = (id: string, who: "echo" | "generator"): boolean =>
    Object.entries(d.references).some(([kind, ref]) => ref === id && kind.startsWith(`${who} `));
  const speed = (value: number | undefined): string => fixed(value, 2);
  out.push("");
  out.push("## Machine speed over the run");
  out.push("");
  out.push(
    "A fixed piece of CPU work (bench/speed-probe.ts: arithmetic, a walk through 64 MiB of memory, small " +
      "system calls; CPU time, the fastest of 5 repeats) run at the start, before every row group and at the " +
      `end, as speed relative to the first probe (above 1 faster, below slower; flagged beyond ${percent(d.limits.speed)}).`,
  );
  out.push("");
  out.push(
    table(
      ["before", "at (s)", "compute", "memory", "kernel", "speed"],
      d.probes.map((p) => [
        p.before,
        fixed(p.atSeconds, 0),
        speed(p.compute),
        speed(p.memory),
        speed(p.kernel),
        p.flagged ? `**${speed(p.speed)}**` : speed(p.speed),
      ]),
    ),
  );
  out.push("");
  out.push(
    "The echo server's and the load generator's CPU per 1000 calls in each fixed-rate row against the same " +
      "process in the reference row of its kind (they do the same work per call in both), row ÷ reference " +
      `(row / reference, CPU s). References: ${Object.entries(d.references)
        .map(([kind, id]) => `${kind} ${id}`)
        .join(", ")}. Flagged beyond ${percent(d.limits.echo)} (echo) and ${percent(d.limits.generator)} ` +
      "(generator). Unthrottled rows are not compared (CPU per call there falls as throughput rises); the " +
      "probes before and after their group still apply.",
  );
  out.push("");
  out.push(
    table(
      ["scenario", "echo CPU ÷ reference", "generator CPU ÷ reference", "speed before / after"],
      d.rows.map((row) => [
        row.id,
        ratioCell(row.echo, isReference(row.id, "echo")),
        ratioCell(row.generator, isReference(row.id, "generator")),
        `${speed(row.speedBefore)} / ${speed(row.speedAfter)}`,
      ]),
    ),
  );
  out.push("");
  out.push("## Rows measured at another machine speed");
  out.push("");
  if (flagged.length === 0) out.push("None: every row within the limits above.");
  else {
    out.push(
      "Their figures, and every ratio between them and rows measured at the other speed, are off by about " +
        "as much: rerun them (BENCH_ONLY, with their reference rows) or the whole bench (bench/README.md).",
    );
    out.push("");
    for (const w of flagged) out.push(`- ${w}`);
  }
  return out;
}

function perSession(bytes: number, sessions: number): string {
  return sessions === 0 ? "–" : `${(bytes / sessions).toFixed(0)} B`;
}

function pair(l: LatencySummary | undefined): string {
  return l === undefined ? "–" : `${ms(l.p50Us)} / ${ms(l.p99Us)}`;
}
