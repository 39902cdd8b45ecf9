import { readFileSync } from "node:fs";

/**
 * Where a process's resident memory sits, from /proc/<pid>/smaps: file-backed pages (code,
 * shared libraries), the main malloc arena (the `[heap]` mapping that brk grows), and the
 * other anonymous mappings (V8's heap pages, other threads' malloc arenas, large
 * allocations malloc maps on their own). Set against V8's own figures (heap reserved,
 * external), it says whether RSS that grows is V8's heap or malloc's.
 */
export interface ResidentSplit {
  readonly fileBytes: number;
  /** The main arena's brk heap. */
  readonly brkHeapBytes: number;
  /** Anonymous memory outside the brk heap. */
  readonly otherAnonBytes: number;
  /** Anonymous mappings, with their count: V8 and malloc map and unmap them as they go. */
  readonly anonMappings: number;
}

/** The split of the process's RSS now; undefined where /proc does not say. */
export function residentSplit(pid: number): ResidentSplit | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/smaps`, "utf8");
  } catch {
    return undefined;
  }
  let fileBytes = 0;
  let brkHeapBytes = 0;
  let otherAnonBytes = 0;
  let anonMappings = 0;
  // A mapping's header line is "start-end perms offset dev inode [path]"; its fields follow.
  let kind: "file" | "brk" | "anon" = "anon";
  for (const line of text.split("\n")) {
    const header = /^[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ (\d+)\s*(.*)$/.exec(line);
    if (header !== null) {
      const inode = header[1];
      const name = header[2] ?? "";
      kind = name === "[heap]" ? "brk" : inode !== "0" ? "file" : "anon";
      if (kind === "anon" && name === "") anonMappings += 1;
      continue;
    }
    if (!line.startsWith("Rss:")) continue;
    const bytes = Number(/(\d+) kB/.exec(line)?.[1] ?? 0) * 1024;
    if (kind === "file") fileBytes += bytes;
    else if (kind === "brk") brkHeapBytes += bytes;
    else otherAnonBytes += bytes;
  }
  return { fileBytes, brkHeapBytes, otherAnonBytes, anonMappings };
}

/** One V8 heap space (v8.getHeapSpaceStatistics), in bytes. */
export interface HeapSpace {
  readonly name: string;
  readonly sizeBytes: number;
  readonly usedBytes: number;
  readonly physicalBytes: number;
}

/** The spaces the bridge child reports with its memory line, checked as they are parsed. */
export function heapSpacesOf(value: unknown): readonly HeapSpace[] | undefined {
  if (!Array.isArray(value)) return undefined;
  const spaces: HeapSpace[] = [];
  for (const item of value as Record<string, unknown>[]) {
    const name = item.space_name;
    if (typeof name !== "string") return undefined;
    spaces.push({
      name,
      sizeBytes: Number(item.space_size),
      usedBytes: Number(item.space_used_size),
      physicalBytes: Number(item.physical_space_size),
    });
  }
  return spaces;
}
