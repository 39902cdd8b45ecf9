import type { BenchResults } from "./bench-results.js";
import { type ModeKind, PATHS, type PathKind, type ScenarioResult } from "./scenarios.js";

interface Bar {
  readonly label: string;
  readonly value: number | undefined;
  readonly color: string;
}

interface Group {
  readonly label: string;
  readonly bars: readonly Bar[];
}

interface Panel {
  readonly title: string;
  readonly groups: readonly Group[];
  /** Latencies span orders of magnitude (a saturated bridge queues for seconds): log scale. */
  readonly log: boolean;
  readonly format: (value: number) => string;
}

const WIDTH = 760;
const PANEL_HEIGHT = 230;
const LEFT = 60;
const PLOT_TOP = 46;
const PLOT_BOTTOM = 190;
const COLORS = { a: "#4e79a7", b: "#f28e2b" };

const xml = (text: string): string => text.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");

function panel(p: Panel, top: number): string {
  const values = p.groups.flatMap((g) => g.bars.map((b) => b.value ?? 0)).filter((v) => v > 0);
  const max = Math.max(...values, 1);
  const min = p.log ? Math.max(Math.min(...values, max) / 2, 1e-3) : 0;
  const height = PLOT_BOTTOM - PLOT_TOP;
  const scale = (v: number): number => {
    if (v <= 0) return 0;
    if (!p.log) return (v / max) * height;
    return (Math.log10(v / min) / Math.log10((max * 1.2) / min)) * height;
  };
  const parts: string[] = [`<g transform="translate(0,${top})">`];
  parts.push(`<text x="${LEFT}" y="18" font-size="14" font-weight="bold">${xml(p.title)}</text>`);
  parts.push(
    `<line x1="${LEFT}" y1="${PLOT_BOTTOM}" x2="${WIDTH - 20}" y2="${PLOT_BOTTOM}" stroke="#333" stroke-width="1"/>`,
  );
  const groupWidth = (WIDTH - LEFT - 20) / Math.max(p.groups.length, 1);
  p.groups.forEach((g, gi) => {
    const x0 = LEFT + gi * groupWidth;
    const barWidth = Math.min(70, (groupWidth - 40) / Math.max(g.bars.length, 1));
    const start = x0 + (groupWidth - barWidth * g.bars.length) / 2;
    g.bars.forEach((b, bi) => {
      const x = start + bi * barWidth;
      const h = b.value === undefined ? 0 : scale(b.value);
      const y = PLOT_BOTTOM - h;
      parts.push(
        `<rect x="${x.toFixed(1)}" y="${y.toFixed(1)}" width="${(barWidth - 6).toFixed(1)}" height="${h.toFixed(1)}" fill="${b.color}"/>`,
      );
      const text = b.value === undefined ? "–" : p.format(b.value);
      parts.push(
        `<text x="${(x + (barWidth - 6) / 2).toFixed(1)}" y="${(y - 4).toFixed(1)}" font-size="11" text-anchor="middle">${xml(text)}</text>`,
      );
      parts.push(
        `<text x="${(x + (barWidth - 6) / 2).toFixed(1)}" y="${PLOT_BOTTOM + 14}" font-size="10" text-anchor="middle" fill="#555">${xml(b.label)}</text>`,
      );
    });
    parts.push(
      `<text x="${(x0 + groupWidth / 2).toFixed(1)}" y="${PLOT_BOTTOM + 30}" font-size="12" text-anchor="middle">${xml(g.label)}</text>`,
    );
  });
  if (p.log) {
    parts.push(
      `<text x="${LEFT - 8}" y="${PLOT_BOTTOM}" font-size="10" text-anchor="end" fill="#555">log</text>`,
    );
  }
  parts.push("</g>");
  return parts.join("\n");
}

/** A plain SVG bar chart of throughput and p50/p99 per scenario; no chart library. */
export function renderSvg(r: BenchResults): string {
  const paths: readonly PathKind[] = PATHS;
  const find = (p: PathKind, mode: ModeKind): ScenarioResult | undefined =>
    r.scenarios.find((s) => s.path === p && s.mode === mode);
  const present = paths.filter((p) => find(p, "fixed") !== undefined || find(p, "unthrottled") !== undefined);
  const latency = (mode: ModeKind): Panel => ({
    title: `Latency at ${mode === "fixed" ? `${r.settings.ratePerSec} req/s (from schedule)` : "full load"}, ms`,
    log: true,
    format: (v) => (v >= 100 ? v.toFixed(0) : v.toFixed(2)),
    groups: present.map((p) => {
      const s = find(p, mode);
      return {
        label: p,
        bars: [
          { label: "p50", value: s === undefined ? undefined : s.load.latency.p50Us / 1000, color: COLORS.a },
          { label: "p99", value: s === undefined ? undefined : s.load.latency.p99Us / 1000, color: COLORS.b },
        ],
      };
    }),
  });
  const panels: Panel[] = [
    {
      title: "Throughput, req/s",
      log: false,
      format: (v) => v.toFixed(0),
      groups: present.map((p) => ({
        label: p,
        bars: [
          { label: "fixed", value: find(p, "fixed")?.load.throughputPerSec, color: COLORS.a },
          { label: "unthrottled", value: find(p, "unthrottled")?.load.throughputPerSec, color: COLORS.b },
        ],
      })),
    },
    latency("fixed"),
    latency("unthrottled"),
  ];
  const height = panels.length * PANEL_HEIGHT + 30;
  const body = panels.map((p, i) => panel(p, 30 + i * PANEL_HEIGHT)).join("\n");
  const caption = `sessionbridge bench · ${r.machine.date.slice(0, 10)} · ${r.machine.cpuModel}, ${r.machine.cores} cores · Node ${r.machine.node}`;
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="sans-serif">`,
    `<rect width="100%" height="100%" fill="white"/>`,
    `<text x="${LEFT}" y="20" font-size="12" fill="#555">${xml(caption)}</text>`,
    body,
    "</svg>",
    "",
  ].join("\n");
}
