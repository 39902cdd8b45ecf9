import type { KV, KvEntry } from "@nats-io/kv";
import { readValue } from "./jetstream-claims.js";
import { decodeJson, idempotencyFromJson, sessionFromJson, token } from "./jetstream-codec.js";
import type { JetStreamJournals } from "./jetstream-journal.js";
import type { IdempotencyRecord, OutboxRecord, SessionRecord } from "./records.js";
import { compareNewestFirst, compareOldestFirst, compareText } from "./session-order.js";
import type { SessionStore } from "./session-store.js";
import { checkPageSize, decodePageToken, encodePageToken } from "./store-query.js";

/**
 * The read side of the JetStream store's KV buckets (jetstream-store.ts): session records,
 * S8 idempotency records and the S10 outbox, and purge of what has ended. Every read goes
 * to a bucket's stream leader (the buckets are opened without direct gets), so a replica
 * that loads a partition sees the last commit there.
 */
export interface JetStreamRecords {
  readSession(id: string): Promise<SessionRecord | undefined>;
  recover: SessionStore["recover"];
  listSessions: SessionStore["listSessions"];
  getIdempotency(principal: string, key: string): Promise<IdempotencyRecord | undefined>;
  purge: SessionStore["purge"];
}

/** Concurrent KV reads when a query reads many records. */
const READ_CONCURRENCY = 32;

export function createJetStreamRecords(
  buckets: { sessions: KV; idempotency: KV; outbox: KV },
  journals: JetStreamJournals,
): JetStreamRecords {
  const readSession = async (id: string): Promise<SessionRecord | undefined> => {
    const entry = await readValue(buckets.sessions, token(id));
    return entry === undefined ? undefined : sessionFromJson(decodeJson(entry.value));
  };

  const readAll = async <T>(kv: KV, filter: string, decode: (entry: KvEntry) => T): Promise<T[]> => {
    const keys: string[] = [];
    for await (const key of await kv.keys(filter)) keys.push(key);
    const out: T[] = [];
    for (let i = 0; i < keys.length; i += READ_CONCURRENCY) {
      const got = await Promise.all(keys.slice(i, i + READ_CONCURRENCY).map((k) => readValue(kv, k)));
      for (const entry of got) if (entry !== undefined) out.push(decode(entry));
    }
    return out;
  };

  const allSessions = (): Promise<SessionRecord[]> =>
    readAll(buckets.sessions, ">", (e) => sessionFromJson(decodeJson(e.value)));

  return {
    readSession,

    async recover() {
      const live = (await allSessions()).filter((s) => s.state === "active").sort(compareOldestFirst);
      const outbox = await readAll(
        buckets.outbox,
        ">",
        (e) => decodeJson(e.value) as unknown as OutboxRecord,
      );
      outbox.sort(
        (a, b) =>
          compareText(a.sessionId, b.sessionId) || a.index - b.index || compareText(a.messageId, b.messageId),
      );
      return {
        sessions: live,
        outbox: outbox.map((o) => ({ sessionId: o.sessionId, messageId: o.messageId, index: o.index })),
      };
    },

    async listSessions(query) {
      checkPageSize(query.pageSize);
      const after = decodePageToken(query.pageToken);
      const matching = (await allSessions())
        .filter(
          (s) =>
            (query.service === undefined || s.service === query.service) &&
            (query.state === undefined || s.state === query.state) &&
            (query.principal === undefined || s.principal === query.principal) &&
            (after === undefined || compareNewestFirst(s, after) > 0),
        )
        .sort(compareNewestFirst);
      const page = matching.slice(0, query.pageSize);
      const last = page[page.length - 1];
      return {
        sessions: page,
        nextPageToken:
          matching.length > page.length && last !== undefined ? encodePageToken(last) : undefined,
      };
    },

    async getIdempotency(principal, key) {
      const entry = await readValue(buckets.idempotency, `${token(principal)}.${token(key)}`);
      return entry === undefined ? undefined : idempotencyFromJson(decodeJson(entry.value));
    },

    async purge(endedBeforeMs, idempotencyBeforeMs) {
      let sessions = 0;
      for (const s of await allSessions()) {
        if (s.state === "active" || s.endedAtMs === undefined || !(s.endedAtMs < endedBeforeMs)) continue;
        await journals.remove(s.id);
        for await (const key of await buckets.outbox.keys(`${token(s.id)}.>`))
          await buckets.outbox.purge(key);
        await buckets.sessions.purge(token(s.id));
        sessions++;
      }
      let idempotency = 0;
      const records = await readAll(buckets.idempotency, ">", (e) =>
        idempotencyFromJson(decodeJson(e.value)),
      );
      for (const record of records) {
        if (!(record.createdAtMs < idempotencyBeforeMs)) continue;
        await buckets.idempotency.purge(`${token(record.principal)}.${token(record.key)}`);
        idempotency++;
      }
      return { sessions, idempotency };
    },
  };
}
