import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { type BridgeProcess, startBridgeProcess } from "../support/bridge-process.js";
import { type NatsClusterFixture, startNatsCluster } from "../support/nats-cluster.js";
import { repoRoot } from "../support/repo-root.js";
import { waitFor } from "../support/wait.js";

/**
 * Real processes for the several-replicas tests: a three-node JetStream cluster, the
 * orders example process (it applies each sb-message-id once and keeps its orders in
 * SQLite), and bridge replicas started through the CLI with `cluster:` in their YAML and
 * `--replica NAME`, sharing one R3 store.
 */
export interface ReplicaSet {
  readonly nats: NatsClusterFixture;
  readonly replicas: Map<string, BridgeProcess>;
  /** Starts (or starts again) the replica `name`; resolves once it is ready. */
  startReplica(name: string): Promise<BridgeProcess>;
  /** SIGKILLs the replica `name`. */
  killReplica(name: string): Promise<void>;
  /** A gRPC client of examples.orders.v1.Orders on the replica's current address. */
  client(name: string): grpc.Client;
  stop(): Promise<void>;
}

export async function startReplicaSet(options: {
  readonly prefix: string;
  readonly partitions: number;
  readonly leaseTtlMs: number;
}): Promise<ReplicaSet> {
  const nats = await startNatsCluster(3);
  const dir = mkdtempSync(path.join(tmpdir(), "sb-replicas-"));
  const orders: ChildProcess = spawn(
    process.execPath,
    ["dist/examples/orders/orders-main.js", "127.0.0.1:0", path.join(dir, "orders.db")],
    { cwd: repoRoot(), stdio: ["ignore", "pipe", "ignore"] },
  );
  const lines: string[] = [];
  createInterface({ input: orders.stdout as NodeJS.ReadableStream }).on("line", (l) => lines.push(l));
  const ready = (): string | undefined => lines.find((l) => l.includes("orders process ready"));
  await waitFor(() => ready() !== undefined, 20_000, "orders process ready");
  const port = (JSON.parse(ready() ?? "{}") as { port: number }).port;
  const config = path.join(dir, "sessionbridge.yaml");
  writeFileSync(
    config,
    [
      "contracts:",
      `  importPaths: [${JSON.stringify(path.join(repoRoot(), "examples/orders/proto"))}]`,
      "  files: [examples/orders/v1/orders.proto]",
      "processes:",
      "  - name: orders",
      "    services: [examples.orders.v1.Orders]",
      `    location: grpc://127.0.0.1:${port}`,
      `store: jetstream:${options.prefix}`,
      "storeOptions:",
      `  url: ${nats.urls.join(",")}`,
      "  replicas: 3",
      "cluster:",
      `  partitions: ${options.partitions}`,
      `  leaseTtlMs: ${options.leaseTtlMs}`,
    ].join("\n"),
  );
  const replicas = new Map<string, BridgeProcess>();
  const started: { name: string; bridge: BridgeProcess }[] = [];
  const clients = new Map<string, { address: string; client: grpc.Client }>();
  const definition = protoLoader.loadSync("examples/orders/v1/orders.proto", {
    includeDirs: [path.join(repoRoot(), "examples/orders/proto"), path.join(repoRoot(), "proto")],
    keepCase: true,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    examples: { orders: { v1: { Orders: grpc.ServiceClientConstructor } } };
  };
  const set: ReplicaSet = {
    nats,
    replicas,
    async startReplica(name) {
      const bridge = await startBridgeProcess(
        ["--config", config, "--grpc", "127.0.0.1:0", "--replica", name],
        60_000,
      );
      replicas.set(name, bridge);
      started.push({ name, bridge });
      return bridge;
    },
    async killReplica(name) {
      const bridge = replicas.get(name);
      if (bridge === undefined) return;
      bridge.child.kill("SIGKILL");
      await bridge.exited;
    },
    client(name) {
      const bridge = replicas.get(name);
      if (bridge === undefined) throw new Error(`no replica ${name}`);
      const known = clients.get(name);
      if (known?.address === bridge.address) return known.client;
      known?.client.close();
      const client = new pkg.examples.orders.v1.Orders(bridge.address, grpc.credentials.createInsecure());
      clients.set(name, { address: bridge.address, client });
      return client;
    },
    async stop() {
      const logDir = process.env.SB_CLUSTER_LOGS;
      if (logDir !== undefined) {
        for (const [i, { name, bridge }] of started.entries()) {
          writeFileSync(path.join(logDir, `${i}-${name}.log`), `${bridge.lines.join("\n")}\n`);
        }
      }
      for (const { client } of clients.values()) client.close();
      for (const bridge of replicas.values()) {
        if (bridge.child.exitCode === null && bridge.child.signalCode === null) bridge.child.kill("SIGKILL");
        await bridge.exited;
      }
      orders.kill("SIGKILL");
      await nats.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return set;
}
