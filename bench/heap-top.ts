/**
 * Summarises a V8 sampling heap profile (.heapprofile, as the bench writes with
 * BENCH_HEAP_PROF): the allocation sites with the most bytes, merged across call paths,
 * each with its caller chain shortened to the first frames outside Node's internals, so a
 * site in node:http2 shows which of the bridge's calls reached it.
 *
 *   node dist/bench/heap-top.js <file.heapprofile> [count] [calls in the window]
 */
import { readFileSync } from "node:fs";
import path from "node:path";

interface HeapNode {
  readonly callFrame: { readonly functionName: string; readonly url: string; readonly lineNumber: number };
  readonly selfSize: number;
  readonly children: readonly HeapNode[];
}

interface HeapProfile {
  readonly head: HeapNode;
}

export interface AllocationSite {
  readonly site: string;
  readonly via: string;
  readonly bytes: number;
}

function frameName(frame: HeapNode["callFrame"]): string {
  const name = frame.functionName || "(anonymous)";
  const file = frame.url.replace(/^file:\/\//, "");
  if (file === "") return name;
  const dist = file.indexOf("/dist/");
  const where = file.startsWith("/") ? (dist >= 0 ? file.slice(dist + 6) : path.basename(file)) : file;
  return `${name} ${where}:${frame.lineNumber + 1}`;
}

const isOwn = (frame: HeapNode["callFrame"]): boolean => frame.url.includes("/dist/");

/** Allocation sites by bytes sampled, with the nearest frame of the bridge's own code above each. */
export function topAllocations(
  profile: HeapProfile,
  count: number,
): { total: number; top: AllocationSite[] } {
  const totals = new Map<string, AllocationSite & { bytes: number }>();
  let total = 0;
  const walk = (node: HeapNode, own: string): void => {
    const here = isOwn(node.callFrame) ? frameName(node.callFrame) : own;
    if (node.selfSize > 0) {
      total += node.selfSize;
      const site = frameName(node.callFrame);
      const key = `${site}\n${here}`;
      const entry = totals.get(key) ?? { site, via: here === site ? "" : here, bytes: 0 };
      entry.bytes += node.selfSize;
      totals.set(key, entry);
    }
    for (const child of node.children) walk(child, here);
  };
  walk(profile.head, "");
  const top = [...totals.values()].sort((a, b) => b.bytes - a.bytes).slice(0, count);
  return { total, top };
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const [file, count, calls] = process.argv.slice(2);
  if (file === undefined) {
    process.stderr.write("usage: heap-top <file.heapprofile> [count] [calls]\n");
    process.exit(2);
  }
  const profile = JSON.parse(readFileSync(file, "utf8")) as HeapProfile;
  const { total, top } = topAllocations(profile, Number(count ?? 25));
  const perCall = calls === undefined ? undefined : Number(calls);
  const per = (bytes: number): string => (perCall === undefined ? "" : ` | ${(bytes / perCall).toFixed(0)}`);
  process.stdout.write(
    `sampled ${(total / 1048576).toFixed(1)} MiB${perCall === undefined ? "" : ` over ${perCall} calls`}\n\n`,
  );
  process.stdout.write(
    `| # | KiB | % |${perCall === undefined ? "" : " B / call |"} allocation site | reached from |\n`,
  );
  process.stdout.write(`|---:|---:|---:|${perCall === undefined ? "" : "---:|"}---|---|\n`);
  top.forEach((s, i) => {
    process.stdout.write(
      `| ${i + 1} | ${(s.bytes / 1024).toFixed(0)} | ${((s.bytes / total) * 100).toFixed(1)}${per(s.bytes)} | \`${s.site}\` | ${s.via} |\n`,
    );
  });
}
