import Database from "better-sqlite3";
import { storeFailure } from "./store-errors.js";

/**
 * Page size of a new database. Each commit appends every page it changed to the WAL, so
 * the page is the unit of write amplification: a call changes a handful of pages (the
 * journal's tail, one leaf per index, the outbox, page 1 when the file grows), most of
 * them for a few dozen bytes each. With 4 KiB pages a call wrote ~80 KiB for ~3 KiB
 * stored; with 1 KiB pages 16 frames (17 KB of WAL) per call; with 512-byte pages 20
 * smaller frames (11 KB), though an envelope now spans more overflow pages
 * (bench/store-write-amplification.ts). An existing database keeps the page size it was
 * created with (changing it takes a VACUUM).
 *
 * Small pages cost CPU: more pages per entry (an envelope spans three), deeper b-trees, and
 * more WAL frames to checksum and write. With the journal's integer index keys (migration
 * 4), one transaction per commit, 10,000 sessions: 1 KiB pages wrote 25.5 KiB per call
 * (with the final checkpoint) for about 0.65 ms of CPU, 512-byte pages 22.2 KiB for about
 * 0.8 ms; 4 KiB pages 47.7 KiB. 512 keeps the soak under 10× write amplification.
 */
const NEW_DATABASE_PAGE_BYTES = 512;

/**
 * WAL pages after which the writer checkpoints inline, in the commit that crosses it (64
 * MiB at 512-byte pages). Normally the checkpointer thread copies the WAL long before
 * (sqlite-checkpointer.ts), off the commit path; this bounds the WAL if it cannot keep
 * up. The WAL file is kept (not truncated) up to WAL_SIZE_LIMIT_BYTES, so it is rewritten
 * in place instead of growing again.
 */
const WAL_AUTOCHECKPOINT_PAGES = 131_072;
const WAL_SIZE_LIMIT_BYTES = 64 * 1024 * 1024;

/**
 * The writer's page cache, in KiB (SQLite's default in this build is 16,000). Every commit
 * ends by dropping cached pages past the end of the database, and SQLite does it by
 * scanning its whole page hash when it cannot tell which pages those are: that scan grows
 * with the cache and was the largest single cost of a commit in the writer (nearly half of
 * its time in SQLite at 1000 calls/s). Pages a smaller cache misses are read back from the
 * OS page cache; caches from 4,000 down to 500 KiB cost the same with 64 and with 10,000
 * sessions (bench/store-apply-cpu.ts, bench/results/profile-sqlite.md).
 */
const WRITER_CACHE_KIB = 2_000;

/**
 * The one writing connection (it lives in the writer thread). WAL lets the reader on the
 * main thread go on reading while this one commits. synchronous=FULL fsyncs the WAL on
 * every commit, so a resolved commit survives power loss (S9, S10); NORMAL survives a
 * crash of the process but not of the machine.
 */
export function openWriterConnection(
  path: string,
  synchronous: "full" | "normal",
  busyTimeoutMs: number,
): Database.Database {
  const db = new Database(path);
  try {
    db.pragma(`busy_timeout = ${busyTimeoutMs}`);
    // Only a database without any page yet takes it; before WAL mode, which writes the header.
    db.pragma(`page_size = ${NEW_DATABASE_PAGE_BYTES}`);
    const mode = String(db.pragma("journal_mode = WAL", { simple: true }));
    if (mode.toLowerCase() !== "wal") throw storeFailure(`SQLite refused WAL mode for ${path} (got ${mode})`);
    db.pragma(`synchronous = ${synchronous === "full" ? "FULL" : "NORMAL"}`);
    db.pragma(`wal_autocheckpoint = ${WAL_AUTOCHECKPOINT_PAGES}`);
    db.pragma(`journal_size_limit = ${WAL_SIZE_LIMIT_BYTES}`);
    db.pragma(`cache_size = -${WRITER_CACHE_KIB}`);
    return db;
  } catch (error) {
    db.close();
    throw error;
  }
}

/** A read-only connection for queries on the main thread; it never blocks the writer. */
export function openReaderConnection(path: string, busyTimeoutMs: number): Database.Database {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  db.pragma(`busy_timeout = ${busyTimeoutMs}`);
  return db;
}
