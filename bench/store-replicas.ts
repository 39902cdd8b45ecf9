import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { Kvm } from "@nats-io/kv";
import { connect } from "@nats-io/transport-node";
import { createPartitioning } from "../bridge/cluster/partitions.js";
import { createJetStreamStore } from "../bridge/store/jetstream-store.js";
import { createMemoryStore } from "../bridge/store/memory-store.js";
import type { JournalRecord, SessionRecord } from "../bridge/store/records.js";
import type { SessionStore } from "../bridge/store/session-store.js";
import { createSqliteStore } from "../bridge/store/sqlite-store.js";
import { startReplicaSet } from "../test/cluster/replica-set.js";
import { unaryCall } from "../test/support/grpc-call.js";
import { startNatsCluster } from "../test/support/nats-cluster.js";
import { startNatsServer } from "../test/support/nats-server.js";

/**
 * Store and replica rows: the session stores side by side (memory, SQLite, JetStream R1 on
 * one nats-server, JetStream R3 on a three-node loopback cluster), and the bridge as one
 * replica or two on R3. Open loop at a fixed rate: each operation is due at start + i/rate
 * and its latency runs from that due time (no coordinated omission).
 *
 *   npm run build && node dist/bench/store-replicas.js
 *
 * Settings (environment): STORE_ROWS_RATE (commits/s, 100), STORE_ROWS_SECONDS (10),
 * REPLICA_ROWS_RATE (calls/s, 25), REPLICA_ROWS_SECONDS (10), BENCH_ONLY (comma-separated
 * prefixes of row ids: "store/", "replicas/"). Writes bench/results/store-replicas.md.
 */

const storeRate = setting("STORE_ROWS_RATE", 100);
const storeSeconds = setting("STORE_ROWS_SECONDS", 10);
const replicaRate = setting("REPLICA_ROWS_RATE", 25);
const replicaSeconds = setting("REPLICA_ROWS_SECONDS", 10);
const only = process.env.BENCH_ONLY?.split(",").filter((s) => s !== "");
const wanted = (id: string): boolean => only === undefined || only.some((o) => id.startsWith(o));

interface Row {
  readonly id: string;
  readonly rate: number;
  readonly achieved: number;
  readonly p50: number;
  readonly p99: number;
  readonly errors: number;
}

function setting(name: string, fallback: number): number {
  const raw = process.env[name];
  const value = raw === undefined ? fallback : Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`${name} must be a positive integer`);
  return value;
}

/** Runs `op(i)` at `rate` per second for `seconds`; latency from each operation's due time. */
async function fixedRate(
  id: string,
  rate: number,
  seconds: number,
  op: (i: number) => Promise<unknown>,
): Promise<Row> {
  const total = rate * seconds;
  const latencies: number[] = [];
  let errors = 0;
  const start = performance.now();
  const pending: Promise<void>[] = [];
  for (let i = 0; i < total; i++) {
    const due = start + (i * 1000) / rate;
    const wait = due - performance.now();
    if (wait > 0) await sleep(wait);
    pending.push(
      op(i).then(
        () => {
          latencies.push(Math.max(0, performance.now() - due));
        },
        () => {
          errors++;
        },
      ),
    );
  }
  await Promise.all(pending);
  const elapsed = (performance.now() - start) / 1000;
  latencies.sort((a, b) => a - b);
  const at = (q: number): number =>
    latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? 0;
  const row = { id, rate, achieved: latencies.length / elapsed, p50: at(0.5), p99: at(0.99), errors };
  process.stderr.write(`bench: ${JSON.stringify(row)}\n`);
  return row;
}

function record(id: string, journalLength: number): SessionRecord {
  return {
    id,
    service: "bench.v1.Store",
    state: "active",
    endReason: undefined,
    correlationSet: undefined,
    correlation: {},
    correlationKey: undefined,
    principal: "bench",
    createdAtMs: 1,
    lastActiveAtMs: Date.now(),
    endedAtMs: undefined,
    idleTimeoutMs: 60_000,
    maxLifetimeMs: 3_600_000,
    nextSeq: 1,
    journalLength,
  };
}

function entry(sessionId: string, index: number): JournalRecord {
  return {
    sessionId,
    index,
    messageId: `${sessionId}-${index}`,
    kind: 1,
    seq: 0,
    inReplyTo: "",
    recordedAtMs: Date.now(),
    envelope: new Uint8Array(200).fill(0x5a),
  };
}

/** Commits of a session record and one 200-byte entry, spread over 64 sessions. */
async function storeRow(id: string, store: SessionStore): Promise<Row> {
  const lengths = new Map<string, number>();
  try {
    return await fixedRate(id, storeRate, storeSeconds, (i) => {
      const session = `s${i % 64}`;
      const next = (lengths.get(session) ?? 0) + 1;
      lengths.set(session, next);
      return store.commit({ sessions: [record(session, next)], entries: [entry(session, next)] });
    });
  } finally {
    await store.close();
  }
}

const rows: Row[] = [];
const dir = mkdtempSync(path.join(tmpdir(), "sb-bench-stores-"));
try {
  if (wanted("store/memory")) rows.push(await storeRow("store/memory", createMemoryStore()));
  if (wanted("store/sqlite")) {
    rows.push(
      await storeRow(
        "store/sqlite",
        await createSqliteStore({ path: path.join(dir, "s.db"), synchronous: "full" }),
      ),
    );
  }
  if (wanted("store/jetstream-r1")) {
    const server = await startNatsServer({ jetstream: true });
    try {
      rows.push(
        await storeRow(
          "store/jetstream-r1",
          await createJetStreamStore({ servers: server.url, prefix: "b1" }),
        ),
      );
    } finally {
      await server.stop();
    }
  }
  if (wanted("store/jetstream-r3")) {
    const cluster = await startNatsCluster(3);
    try {
      const store = await createJetStreamStore({ servers: [...cluster.urls], prefix: "b3", replicas: 3 });
      rows.push(await storeRow("store/jetstream-r3", store));
    } finally {
      await cluster.stop();
    }
  }
  if (wanted("replicas/")) {
    const set = await startReplicaSet({ prefix: "bench", partitions: 64, leaseTtlMs: 5000 });
    try {
      await set.startReplica("a");
      const sessions = 64;
      const open = async (via: () => string): Promise<void> => {
        for (let s = 0; s < sessions; s++) {
          const orderId = `o${s}-${Date.now()}`;
          for (let attempt = 0; ; attempt++) {
            try {
              const opened = await unaryCall(set.client(via()), "Open", { order_id: orderId, customer: "c" });
              sessionIds.set(orderId, String(opened.headers?.get("sb-session-id")[0] ?? ""));
              break;
            } catch (error) {
              if (attempt > 50) throw error;
              await sleep(200);
            }
          }
          orderIds.push(orderId);
        }
      };
      const orderIds: string[] = [];
      const sessionIds = new Map<string, string>();
      const add = (via: (i: number) => string) => (i: number) =>
        unaryCall(
          set.client(via(i)),
          "AddItem",
          { order_id: orderIds[i % orderIds.length], sku: `k${i}`, qty: 1 },
          {},
          {
            deadline: Date.now() + 30_000,
          },
        );
      await open(() => "a");
      if (wanted("replicas/one"))
        rows.push(
          await fixedRate(
            "replicas/one (R3)",
            replicaRate,
            replicaSeconds,
            add(() => "a"),
          ),
        );
      if (wanted("replicas/two")) {
        await set.startReplica("b");
        // Until b holds its share, half the partitions move; measure once they have.
        const settled = Date.now() + 60_000;
        while (Date.now() < settled) {
          const lines = set.replicas.get("b")?.lines ?? [];
          const taken = lines.filter((l) => l.includes('"partitions taken over"')).length;
          if (taken >= 32) break;
          await sleep(500);
        }
        rows.push(
          await fixedRate(
            "replicas/two (R3, calls alternate)",
            replicaRate,
            replicaSeconds,
            add((i) => (i % 2 === 0 ? "a" : "b")),
          ),
        );
        // Where the time of that row goes: the same calls sent each to its session's owner,
        // then each to the other replica (every call forwarded once).
        const owners = await ownersOf(set.nats.urls, orderIds, sessionIds);
        const other = (name: string | undefined): string => (name === "a" ? "b" : "a");
        rows.push(
          await fixedRate(
            "replicas/two (R3, calls to the owner)",
            replicaRate,
            replicaSeconds,
            add((i) => owners.get(orderIds[i % orderIds.length] ?? "") ?? "a"),
          ),
        );
        rows.push(
          await fixedRate(
            "replicas/two (R3, every call forwarded)",
            replicaRate,
            replicaSeconds,
            add((i) => other(owners.get(orderIds[i % orderIds.length] ?? ""))),
          ),
        );
      }
      for (const [name, bridge] of set.replicas) {
        const events = new Map<string, number>();
        for (const line of bridge.lines) {
          const msg = (JSON.parse(line) as { msg?: string; level?: number }).msg ?? "";
          if (/partition|lease|takeover|taken/.test(msg)) events.set(msg, (events.get(msg) ?? 0) + 1);
        }
        process.stderr.write(`bench: replica ${name}: ${JSON.stringify(Object.fromEntries(events))}\n`);
      }
    } finally {
      await set.stop();
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}

const table = [
  "| row | rate /s | achieved /s | p50 ms | p99 ms | errors |",
  "| --- | ---: | ---: | ---: | ---: | ---: |",
  ...rows.map(
    (r) =>
      `| ${r.id} | ${r.rate} | ${r.achieved.toFixed(0)} | ${r.p50.toFixed(1)} | ${r.p99.toFixed(1)} | ${r.errors} |`,
  ),
].join("\n");
process.stdout.write(`${table}\n`);
if (only === undefined) writeFileSync(path.join("bench", "results", "store-replicas.md"), `${table}\n`);

/** Each order's owner replica now, from its session's partition and the lease bucket. */
async function ownersOf(
  urls: readonly string[],
  orderIds: readonly string[],
  sessionIds: ReadonlyMap<string, string>,
): Promise<Map<string, string>> {
  const partitioning = createPartitioning(64);
  const nc = await connect({ servers: [...urls] });
  try {
    const kv = await new Kvm(nc).open("bench_cluster");
    const owners = new Map<string, string>();
    for (const orderId of orderIds) {
      const entry = await kv.get(`lease.${partitioning.ofSession(sessionIds.get(orderId) ?? "")}`);
      if (entry === null || entry.operation !== "PUT") continue;
      owners.set(orderId, (JSON.parse(new TextDecoder().decode(entry.value)) as { replica: string }).replica);
    }
    return owners;
  } finally {
    await nc.close();
  }
}
