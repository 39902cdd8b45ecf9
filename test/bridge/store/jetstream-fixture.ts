import { randomBytes } from "node:crypto";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { createJetStreamStore, type JetStreamSessionStore } from "../../../bridge/store/jetstream-store.js";
import type { OpenedStore } from "./session-store.suite.js";

/**
 * A fresh JetStream store per test on a running server or cluster: its own prefix, so
 * tests share the servers but never each other's buckets; cleanup deletes its streams.
 */
export async function openJetStreamStore(servers: readonly string[], replicas: number): Promise<OpenedStore> {
  const prefix = `t${randomBytes(6).toString("hex")}`;
  const open = (): Promise<JetStreamSessionStore> => createJetStreamStore({ servers, prefix, replicas });
  let store = await open();
  return {
    store,
    followers: () => store.followers(),
    async reopen() {
      await store.close();
      store = await open();
      return store;
    },
    async cleanup() {
      await store.close();
      const nc = await connect({ servers: [...servers] });
      try {
        const jsm = await jetstreamManager(nc);
        for await (const info of jsm.streams.list()) {
          if (info.config.name.startsWith(`${prefix}_`) || info.config.name.startsWith(`KV_${prefix}_`)) {
            await jsm.streams.delete(info.config.name);
          }
        }
      } finally {
        await nc.close();
      }
    },
  };
}
