import { closeSync, openSync, readSync } from "node:fs";
import Database from "better-sqlite3";

/** WAL frames by what their page belongs to (a table, an index, page 1, the freelist). */
export interface WalPages {
  /** Frames in the WAL now (mxFrame), and how many of them ended a transaction. */
  readonly frames: number;
  readonly transactions: number;
  /** Frames per b-tree name, most first; "page 1" is the header page, "free" a freelist page. */
  readonly byBtree: readonly { readonly name: string; readonly frames: number }[];
}

const WAL_HEADER_BYTES = 32;
const FRAME_HEADER_BYTES = 24;

/**
 * Which b-tree each frame of a database's WAL wrote, as SQLite's dbstat table places the
 * page now: the accounting of where a commit's bytes go. Reads the frames up to mxFrame
 * of the WAL index (the -shm file), so call it while the database is open and before the
 * last connection closes (which checkpoints and removes the WAL). A page freed and reused
 * by another b-tree since its frame was written counts for its owner now.
 */
export function walPagesByBtree(path: string): WalPages {
  const shm = Buffer.alloc(20);
  const shmFd = openSync(`${path}-shm`, "r");
  try {
    readSync(shmFd, shm, 0, 20, 0);
  } finally {
    closeSync(shmFd);
  }
  const frames = shm.readUInt32LE(16);
  const db = new Database(path, { readonly: true, fileMustExist: true });
  let owners: Map<number, string>;
  let pageBytes: number;
  try {
    pageBytes = Number(db.pragma("page_size", { simple: true }));
    owners = new Map(
      (
        db
          .prepare(
            "SELECT pageno, name || CASE pagetype WHEN 'overflow' THEN ' (overflow)' ELSE '' END AS name FROM dbstat",
          )
          .all() as { pageno: number; name: string }[]
      ).map((r) => [r.pageno, r.name]),
    );
  } finally {
    db.close();
  }
  const counts = new Map<string, number>();
  let transactions = 0;
  const header = Buffer.alloc(FRAME_HEADER_BYTES);
  const walFd = openSync(`${path}-wal`, "r");
  try {
    for (let i = 0; i < frames; i++) {
      readSync(walFd, header, 0, FRAME_HEADER_BYTES, WAL_HEADER_BYTES + i * (FRAME_HEADER_BYTES + pageBytes));
      const page = header.readUInt32BE(0);
      if (header.readUInt32BE(4) !== 0) transactions++;
      const name = page === 1 ? "page 1" : (owners.get(page) ?? "free");
      counts.set(name, (counts.get(name) ?? 0) + 1);
    }
  } finally {
    closeSync(walFd);
  }
  const byBtree = [...counts].map(([name, n]) => ({ name, frames: n })).sort((a, b) => b.frames - a.frames);
  return { frames, transactions, byBtree };
}
