/**
 * Summarises a V8 .cpuprofile (as written by node --cpu-prof): the functions with the
 * most self time, merged across call sites.
 *
 *   node dist/bench/profile-top.js <file.cpuprofile> [count]
 */
import { readFileSync } from "node:fs";
import path from "node:path";

interface ProfileNode {
  readonly id: number;
  readonly callFrame: {
    readonly functionName: string;
    readonly url: string;
    readonly lineNumber: number;
  };
  readonly children?: readonly number[];
}

interface CpuProfile {
  readonly nodes: readonly ProfileNode[];
  readonly samples: readonly number[];
  readonly timeDeltas: readonly number[];
}

export interface SelfTime {
  readonly name: string;
  readonly where: string;
  readonly selfMs: number;
  readonly percent: number;
}

/**
 * The `count` entries with the most self time. "(idle)" (the event loop waiting) is left out
 * and percentages are of the busy time, which is what the process spent CPU on.
 */
export function topSelfTime(
  profile: CpuProfile,
  count: number,
): { busyMs: number; idleMs: number; top: SelfTime[] } {
  const byNode = new Map<number, ProfileNode>(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, { name: string; where: string; us: number }>();
  let busy = 0;
  let idle = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const frame = byNode.get(id)?.callFrame;
    if (frame === undefined) return;
    if (frame.functionName === "(idle)") {
      idle += us;
      return;
    }
    busy += us;
    const name = frame.functionName || "(anonymous)";
    const file = frame.url.replace(/^file:\/\//, "");
    const where = file === "" ? "" : `${shorten(file)}:${frame.lineNumber + 1}`;
    const key = `${name}\n${where}`;
    const entry = totals.get(key) ?? { name, where, us: 0 };
    entry.us += us;
    totals.set(key, entry);
  });
  const top = [...totals.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, count)
    .map((e) => ({ name: e.name, where: e.where, selfMs: e.us / 1000, percent: (e.us / busy) * 100 }));
  return { busyMs: busy / 1000, idleMs: idle / 1000, top };
}

/** Where self time goes, by part: V8's collector, native code, Node's HTTP/2 and other internals, the bridge's parts. */
export function selfTimeByPart(profile: CpuProfile): { part: string; selfMs: number; percent: number }[] {
  const byNode = new Map<number, ProfileNode>(profile.nodes.map((n) => [n.id, n]));
  const totals = new Map<string, number>();
  let busy = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const frame = byNode.get(id)?.callFrame;
    if (frame === undefined || frame.functionName === "(idle)") return;
    busy += us;
    const part = partOf(frame.functionName, frame.url);
    totals.set(part, (totals.get(part) ?? 0) + us);
  });
  return [...totals.entries()]
    .sort((a, b) => b[1] - a[1])
    .map(([part, us]) => ({ part, selfMs: us / 1000, percent: (us / busy) * 100 }));
}

function partOf(name: string, url: string): string {
  if (name === "(garbage collector)") return "V8 garbage collector";
  if (url === "")
    return name === "(program)" ? "native (program: V8, libuv, nghttp2, syscalls)" : "native builtins";
  if (url.startsWith("node:internal/http2") || url === "node:http2") return "Node http2 (JavaScript)";
  if (
    url.startsWith("node:internal/streams") ||
    url === "node:events" ||
    url.startsWith("node:internal/event_target")
  )
    return "Node streams and events";
  if (
    url.startsWith("node:internal/abort_controller") ||
    url.startsWith("node:internal/util") ||
    url === "node:async_hooks"
  )
    return "Node async_hooks, abort signals, util";
  if (url.startsWith("node:")) return "Node, other internals";
  const file = url.replace(/^file:\/\//, "");
  if (file.includes("node_modules/")) return "dependencies (node_modules)";
  for (const part of ["bridge/store/", "bridge/engine/", "adapters/grpc/", "bridge/", "bench/"]) {
    if (file.includes(`/dist/${part}`)) return part.replace(/\/$/, "");
  }
  return "other JavaScript";
}

const OURS = ["bridge/store", "bridge/engine", "adapters/grpc", "bridge"];

/**
 * Time spent outside the bridge's code (Node's JavaScript, native code) while a bridge
 * function was on the stack, charged to the nearest such function above it: what the
 * bridge's own calls into Node cost, the work they ask of Node's streams, HTTP/2 and
 * timers included. Samples with no bridge frame above them (Node reacting to sockets and
 * nghttp2, the collector) are not charged to anyone.
 */
export function nodeTimeByCaller(profile: CpuProfile, count: number): { chargedMs: number; top: SelfTime[] } {
  const byNode = new Map<number, ProfileNode>(profile.nodes.map((n) => [n.id, n]));
  const parent = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parent.set(child, node.id);
  const ours = (node: ProfileNode): boolean =>
    OURS.includes(partOf(node.callFrame.functionName, node.callFrame.url));
  const totals = new Map<string, { name: string; where: string; us: number }>();
  let busy = 0;
  let charged = 0;
  profile.samples.forEach((id, i) => {
    const us = profile.timeDeltas[i] ?? 0;
    const node = byNode.get(id);
    if (node === undefined || node.callFrame.functionName === "(idle)") return;
    busy += us;
    if (ours(node)) return;
    let up = parent.get(id);
    while (up !== undefined) {
      const caller = byNode.get(up);
      if (caller !== undefined && ours(caller)) {
        const frame = caller.callFrame;
        const where = `${shorten(frame.url.replace(/^file:\/\//, ""))}:${frame.lineNumber + 1}`;
        const name = frame.functionName || "(anonymous)";
        const key = `${name}\n${where}`;
        const entry = totals.get(key) ?? { name, where, us: 0 };
        entry.us += us;
        totals.set(key, entry);
        charged += us;
        return;
      }
      up = parent.get(up);
    }
  });
  const top = [...totals.values()]
    .sort((a, b) => b.us - a.us)
    .slice(0, count)
    .map((e) => ({ name: e.name, where: e.where, selfMs: e.us / 1000, percent: (e.us / busy) * 100 }));
  return { chargedMs: charged / 1000, top };
}

/** Paths relative to node_modules or the repository's dist/, which is what identifies them. */
function shorten(file: string): string {
  // Node's own modules (node:internal/…) are already short and unambiguous.
  if (!file.startsWith("/")) return file;
  const modules = file.lastIndexOf("node_modules/");
  if (modules >= 0) return file.slice(modules + "node_modules/".length);
  const dist = file.indexOf("/dist/");
  return dist >= 0 ? file.slice(dist + "/dist/".length) : path.basename(file);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, count] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write("usage: profile-top <file.cpuprofile> [count]\n");
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, "utf8")) as CpuProfile;
  const { busyMs, idleMs, top } = topSelfTime(profile, Number(count ?? 15));
  process.stdout.write(
    `busy ${busyMs.toFixed(0)} ms, idle ${idleMs.toFixed(0)} ms; self % is of busy time\n\n`,
  );
  process.stdout.write("| part | self ms | self % |\n|---|---:|---:|\n");
  for (const p of selfTimeByPart(profile)) {
    process.stdout.write(`| ${p.part} | ${p.selfMs.toFixed(0)} | ${p.percent.toFixed(1)} |\n`);
  }
  process.stdout.write("\n");
  process.stdout.write("| # | self ms | self % | function | where |\n|---:|---:|---:|---|---|\n");
  top.forEach((r, i) => {
    process.stdout.write(
      `| ${i + 1} | ${r.selfMs.toFixed(0)} | ${r.percent.toFixed(1)} | \`${r.name}\` | ${r.where} |\n`,
    );
  });
  const callers = nodeTimeByCaller(profile, Number(count ?? 15));
  process.stdout.write(
    `\nNode and native time under a bridge function, charged to the nearest one above it (${callers.chargedMs.toFixed(0)} ms in all; % of busy time)\n\n`,
  );
  process.stdout.write("| # | ms | % | bridge function | where |\n|---:|---:|---:|---|---|\n");
  callers.top.forEach((r, i) => {
    process.stdout.write(
      `| ${i + 1} | ${r.selfMs.toFixed(0)} | ${r.percent.toFixed(1)} | \`${r.name}\` | ${r.where} |\n`,
    );
  });
}
