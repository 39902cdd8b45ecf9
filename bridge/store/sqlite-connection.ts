import Database from "better-sqlite3";
import { storeFailure } from "./store-errors.js";

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
    const mode = String(db.pragma("journal_mode = WAL", { simple: true }));
    if (mode.toLowerCase() !== "wal") throw storeFailure(`SQLite refused WAL mode for ${path} (got ${mode})`);
    db.pragma(`synchronous = ${synchronous === "full" ? "FULL" : "NORMAL"}`);
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
