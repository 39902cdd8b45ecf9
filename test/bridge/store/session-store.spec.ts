import { createMemoryStore } from "../../../bridge/store/memory-store.js";
import type { SqliteSessionStore } from "../../../bridge/store/sqlite-store.js";
import { describeSessionStore } from "./session-store.suite.js";
import { openTempSqlite } from "./sqlite-fixture.js";

describeSessionStore("memory", async () => {
  const store = createMemoryStore();
  return { store, followers: () => store.sizes().followers, cleanup: () => store.close() };
});

describeSessionStore("sqlite", async () => {
  const temp = await openTempSqlite();
  let current: SqliteSessionStore = temp.store;
  return {
    store: temp.store,
    reopen: async () => {
      current = await temp.reopen();
      return current;
    },
    followers: () => current.followers(),
    cleanup: temp.cleanup,
  };
});
