/**
 * The machine's speed, as the CPU time a fixed piece of work takes: run by the benchmark
 * in a fresh process at the start, between row groups and at the end (machine-speed.ts),
 * so that a machine that slows down part-way through a run (frequency, a busy sibling
 * hyperthread or memory bus on the host: none of it shows as load or steal) is seen.
 *
 * Three parts, each timed in CPU seconds (getrusage), not wall time, so that being
 * descheduled by other work does not count as slowness; each is the fastest of a few
 * repeats, the others having been disturbed:
 * - compute: integer arithmetic in registers (clock speed, a busy sibling core);
 * - memory: a dependent walk over 64 MiB, every step a cache miss (the memory path);
 * - kernel: small reads from /dev/zero (system calls, what the echo's and the generator's
 *   socket I/O spends most of its time in).
 *
 * Prints one JSON line: {"computeMs", "memoryMs", "kernelMs", "wallMs"}.
 */
import { closeSync, openSync, readSync } from "node:fs";

/** Fixed amounts of work: about 20–40 ms of CPU each on the bench machine. */
const COMPUTE_STEPS = 10_000_000;
const MEMORY_ENTRIES = 16 * 1024 * 1024; // 64 MiB of Int32: far beyond any cache
const MEMORY_STEPS = 200_000;
const KERNEL_READS = 40_000;
const REPEATS = 5;

/** Keeps the loops' results alive so nothing is optimised away. */
let sink = 0;

function compute(): void {
  let x = 0x9e3779b9 | 0;
  for (let i = 0; i < COMPUTE_STEPS; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
  }
  sink ^= x;
}

/**
 * next[i] = (a·i + c) mod 2^24 with a ≡ 1 (mod 4) and c odd is one cycle through every
 * entry (Hull–Dobell), in an order the prefetchers cannot follow: each step waits for the
 * previous one's load.
 */
function makeWalk(): Int32Array {
  const next = new Int32Array(MEMORY_ENTRIES);
  const mask = MEMORY_ENTRIES - 1;
  for (let i = 0; i < MEMORY_ENTRIES; i++) next[i] = (Math.imul(i, 1_103_515_245) + 12_345) & mask;
  return next;
}

function memory(next: Int32Array): void {
  let i = 0;
  for (let step = 0; step < MEMORY_STEPS; step++) i = next[i] as number;
  sink ^= i;
}

function kernel(fd: number, buffer: Buffer): void {
  for (let i = 0; i < KERNEL_READS; i++) sink ^= readSync(fd, buffer, 0, buffer.length, null);
}

const cpuMs = (since: NodeJS.CpuUsage): number => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
};

/** The fastest of REPEATS timed runs, after one untimed run that compiles and warms up. */
function fastest(work: () => void): number {
  work();
  let best = Number.POSITIVE_INFINITY;
  for (let r = 0; r < REPEATS; r++) {
    const before = process.cpuUsage();
    work();
    best = Math.min(best, cpuMs(before));
  }
  return best;
}

const began = performance.now();
const walk = makeWalk();
const fd = openSync("/dev/zero", "r");
const buffer = Buffer.alloc(512);
try {
  const result = {
    computeMs: fastest(compute),
    memoryMs: fastest(() => memory(walk)),
    kernelMs: fastest(() => kernel(fd, buffer)),
    wallMs: performance.now() - began,
  };
  process.stdout.write(`${JSON.stringify({ ...result, sink: sink & 1 })}\n`);
} finally {
  closeSync(fd);
}
