import { type ChildProcess, spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { jetstreamManager } from "@nats-io/jetstream";
import { connect } from "@nats-io/transport-node";
import { NATS_SERVER_BIN } from "./nats-server.js";

/** A real JetStream cluster of nats-servers on loopback, random ports, for one test suite. */
export interface NatsClusterFixture {
  /** Client URLs, one per node. */
  readonly urls: readonly string[];
  /** SIGKILLs node `index` (0-based); its data directory stays. */
  killNode(index: number): Promise<void>;
  /** Starts node `index` again on the same ports and data, after killNode(). */
  restartNode(index: number): Promise<void>;
  stop(): Promise<void>;
}

interface Node {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  readonly ports: { nats: string; cluster: string };
}

/**
 * Starts `size` nats-servers with JetStream, each routed to all of them (a clustered
 * JetStream needs routes configured on every node, so the route ports are picked first as
 * free loopback ports), each with its store in the fixture's temp directory. Client ports
 * stay `-1`, chosen by the servers.
 * Resolves once the cluster accepts a replicated stream, so tests never race its
 * meta-leader election. stop() kills every node and removes the directory.
 */
export async function startNatsCluster(size = 3): Promise<NatsClusterFixture> {
  const dir = mkdtempSync(path.join(os.tmpdir(), "sb-nats-cluster-"));
  const nodes: Node[] = [];
  const stop = async (): Promise<void> => {
    for (const node of nodes) {
      if (node.child.exitCode === null && node.child.signalCode === null) node.child.kill("SIGKILL");
      await node.exited;
    }
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    const routePorts = await freePorts(size);
    // Client ports are fixed too, so a node restarted after a kill is where clients left it.
    const clientPorts = await freePorts(size);
    const routes = routePorts.map((port) => `nats-route://127.0.0.1:${port}`);
    for (const [i, port] of routePorts.entries()) {
      nodes.push(await startNode(dir, `n${i + 1}`, port, routes, clientPorts[i] ?? -1));
    }
    const urls = nodes.map((n) => n.ports.nats);
    await waitForReplicatedStreams(urls, size);
    const nodeAt = (index: number): Node => {
      const node = nodes[index];
      if (node === undefined) throw new Error(`no node ${index}`);
      return node;
    };
    return {
      urls,
      stop,
      async killNode(index) {
        const node = nodeAt(index);
        node.child.kill("SIGKILL");
        await node.exited;
      },
      async restartNode(index) {
        const node = nodeAt(index);
        if (node.child.exitCode === null && node.child.signalCode === null)
          throw new Error("node is running");
        nodes[index] = await startNode(
          dir,
          `n${index + 1}`,
          routePorts[index] ?? 0,
          routes,
          clientPorts[index] ?? -1,
          true,
        );
      },
    };
  } catch (error) {
    await stop();
    throw error;
  }
}

/** Ports free on loopback right now: bound to port 0, then released. */
async function freePorts(count: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from(
      { length: count },
      () =>
        new Promise<ReturnType<typeof createServer>>((resolve, reject) => {
          const server = createServer();
          server.once("error", reject);
          server.listen(0, "127.0.0.1", () => resolve(server));
        }),
    ),
  );
  const ports = servers.map((s) => {
    const address = s.address();
    return typeof address === "object" && address !== null ? address.port : 0;
  });
  await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
  return ports;
}

async function startNode(
  root: string,
  name: string,
  routePort: number,
  routes: readonly string[],
  clientPort: number,
  again = false,
): Promise<Node> {
  const dir = path.join(root, name);
  if (again) {
    for (const file of readdirSync(dir)) if (file.endsWith(".ports")) rmSync(path.join(dir, file));
  } else {
    mkdirSync(dir);
  }
  const config = [
    `server_name: ${name}`,
    `listen: 127.0.0.1:${clientPort}`,
    `ports_file_dir: ${JSON.stringify(dir)}`,
    `jetstream { store_dir: ${JSON.stringify(path.join(dir, "js"))} }`,
    "cluster {",
    "  name: sb-test",
    `  listen: 127.0.0.1:${routePort}`,
    `  routes: [${routes.map((r) => JSON.stringify(r)).join(", ")}]`,
    "}",
  ];
  const configFile = path.join(dir, "nats.conf");
  writeFileSync(configFile, `${config.join("\n")}\n`);
  const child = spawn(NATS_SERVER_BIN, ["-c", configFile], { stdio: ["ignore", "ignore", "pipe"] });
  let stderr = "";
  child.stderr?.setEncoding("utf8").on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-4096);
  });
  child.once("error", () => undefined);
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  for (let attempt = 0; attempt < 600; attempt++) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`nats-server ${name} exited: ${stderr}`);
    const file = readdirSync(dir).find((f) => f.endsWith(".ports"));
    if (file !== undefined) {
      try {
        const ports = JSON.parse(readFileSync(path.join(dir, file), "utf8")) as {
          nats?: string[];
          cluster?: string[];
        };
        const nats = ports.nats?.[0];
        const cluster = ports.cluster?.[0];
        if (nats !== undefined && cluster !== undefined) return { child, exited, ports: { nats, cluster } };
      } catch {
        // Written but not complete yet: read it again.
      }
    }
    await sleep(50);
  }
  child.kill("SIGKILL");
  await exited;
  throw new Error(`nats-server ${name} wrote no ports file: ${stderr}`);
}

/** Polls until a stream with `replicas` copies can be created (and deletes it again). */
async function waitForReplicatedStreams(urls: readonly string[], replicas: number): Promise<void> {
  const nc = await connect({ servers: [...urls] });
  try {
    let lastError: unknown;
    for (let attempt = 0; attempt < 120; attempt++) {
      try {
        // Inside the loop: creating the manager already asks JetStream, which has no
        // meta leader until the nodes have met.
        const jsm = await jetstreamManager(nc, { timeout: 2_000 });
        await jsm.streams.add({ name: "cluster-ready", subjects: ["cluster-ready"], num_replicas: replicas });
        await jsm.streams.delete("cluster-ready");
        return;
      } catch (error) {
        lastError = error;
        await sleep(250);
      }
    }
    throw new Error(`the JetStream cluster did not become ready: ${String(lastError)}`);
  } finally {
    await nc.close();
  }
}
