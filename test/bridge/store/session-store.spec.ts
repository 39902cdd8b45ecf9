import { createMemoryStore } from "../../../bridge/store/memory-store.js";
import { describeSessionStore } from "./session-store.suite.js";
import { openTempSqlite } from "./sqlite-fixture.js";

describeSessionStore("memory", async () => {
  const store = createMemoryStore();
  return { store, cleanup: () => store.close() };
});

describeSessionStore("sqlite", () => openTempSqlite());
