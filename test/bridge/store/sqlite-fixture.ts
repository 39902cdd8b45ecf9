import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createSqliteStore, type SqliteSessionStore } from "../../../bridge/store/sqlite-store.js";

export interface TempSqlite {
  readonly dir: string;
  readonly path: string;
  readonly store: SqliteSessionStore;
  /** Closes the current store and opens the same file again. */
  readonly reopen: () => Promise<SqliteSessionStore>;
  /** Closes every store it opened and removes the directory. */
  readonly cleanup: () => Promise<void>;
}

/** A SQLite store on a fresh database in its own temporary directory. */
export async function openTempSqlite(
  synchronous: "full" | "normal" = "full",
  busyTimeoutMs?: number,
): Promise<TempSqlite> {
  const dir = mkdtempSync(join(tmpdir(), "sessionbridge-store-"));
  // A directory that does not exist yet: the store creates it.
  const path = join(dir, "data", "sessions.db");
  const opened: SqliteSessionStore[] = [];
  const open = async (): Promise<SqliteSessionStore> => {
    const store = await createSqliteStore(
      busyTimeoutMs === undefined ? { path, synchronous } : { path, synchronous, busyTimeoutMs },
    );
    opened.push(store);
    return store;
  };
  const store = await open();
  return {
    dir,
    path,
    store,
    reopen: async () => {
      await opened[opened.length - 1]?.close();
      return open();
    },
    cleanup: async () => {
      for (const s of opened) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
