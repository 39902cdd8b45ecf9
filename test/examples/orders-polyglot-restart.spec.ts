import { type ChildProcess, execFile, spawn } from "node:child_process";
import { appendFileSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { connect, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { expect } from "chai";
import { EnvelopeKind } from "../../sdk/gen/sessionbridge/v1/envelope.js";
import { createSessionServiceClient } from "../../sdk/ts/session-service-client.js";
import { type BridgeProcess, startBridgeProcess } from "../support/bridge-process.js";
import { header, unaryCall } from "../support/grpc-call.js";
import { type NatsServerFixture, startNatsServer } from "../support/nats-server.js";
import { repoRoot } from "../support/repo-root.js";
import { messageOf } from "./example-launcher.js";

const run = promisify(execFile);
const PAYMENTS_BIN = path.join(repoRoot(), ".tools/examples/bin/orders-payments");
const INVENTORY_PYTHON = path.join(repoRoot(), ".tools/examples/inventory-venv/bin/python");

interface Line {
  sku: string;
  qty: number;
  in_stock: number;
}
interface Reservation {
  order_id: string;
  lines: Line[];
  committed: boolean;
}
interface Payment {
  order_id: string;
  charged_cents: number;
  refunded_cents: number;
  captured: boolean;
}

type Service = "orders" | "inventory" | "payments";
const SERVICE_NAMES: Record<Service, string> = {
  orders: "Orders",
  inventory: "Inventory",
  payments: "Payments",
};

/** A client for one of the example's services, built from nothing but its .proto file. */
function exampleClient(service: Service, address: string): grpc.Client {
  const definition = protoLoader.loadSync(`examples/${service}/v1/${service}.proto`, {
    includeDirs: [path.join(repoRoot(), "examples/orders/proto"), path.join(repoRoot(), "proto")],
    keepCase: true,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    examples: Record<string, { v1: Record<string, grpc.ServiceClientConstructor> }>;
  };
  const Client = pkg.examples[service]?.v1[SERVICE_NAMES[service]];
  if (Client === undefined) throw new Error(`no service ${service}`);
  return new Client(address, grpc.credentials.createInsecure());
}

interface Child {
  readonly child: ChildProcess;
  readonly ready: Record<string, unknown>;
}

/** Starts a child and resolves with the JSON ready line it prints (`<name> process ready`). */
function startChild(name: string, command: string, args: string[], running: ChildProcess[]): Promise<Child> {
  const child = spawn(command, args, { cwd: repoRoot(), stdio: ["ignore", "pipe", "pipe"] });
  running.push(child);
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr = (stderr + d.toString()).slice(-4096);
  });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
      if (messageOf(line) === `${name} process ready`) {
        resolve({ child, ready: JSON.parse(line) as Record<string, unknown> });
      }
    });
    child.once("exit", (code, signal) =>
      reject(new Error(`${name} exited before it was ready (${signal ?? code}): ${stderr}`)),
    );
  });
}

function killed(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    child.once("exit", () => resolve());
    child.kill("SIGKILL");
  });
}

/** The message ids of the session's ONE_WAY journal entries for `method`, in order. */
async function oneWayIds(bridge: string, sessionId: string, method: string): Promise<string[]> {
  const sessions = createSessionServiceClient(bridge, { deadlineMs: 5000 });
  const ids: string[] = [];
  try {
    for await (const entry of sessions.history({ sessionId })) {
      const e = entry.envelope;
      if (e?.kind === EnvelopeKind.ENVELOPE_KIND_ONE_WAY && e.operation.endsWith(`/${method}`))
        ids.push(e.messageId);
    }
  } finally {
    sessions.close();
  }
  return ids;
}

/**
 * The three-language example end to end through the bridge (TypeScript over gRPC, Python
 * over HTTP, Go over NATS), with kill -9 of the Python and the Go process mid-order and a
 * restart: one-way messages accepted while a process is down reach it once it is back,
 * and every message is applied once (S9, S10, S11), including a redelivery with the same
 * sb-message-id.
 */
describe("the three-language orders example after kill -9 of the Python and Go processes (S10, S11)", function () {
  this.timeout(300_000);
  let dir: string;
  let nats: NatsServerFixture;
  let natsClient: NatsConnection;
  const running: ChildProcess[] = [];
  let inventoryPort: number;
  let ordersPort: number;

  before(async () => {
    // The example's own build scripts, as npm start runs them (idempotent).
    await run("bash", ["examples/orders/go/build.sh"], { cwd: repoRoot() });
    await run("bash", ["examples/orders/python/build.sh"], { cwd: repoRoot() });
    dir = mkdtempSync(path.join(os.tmpdir(), "sb-polyglot-"));
    nats = await startNatsServer();
    natsClient = await connect({ servers: nats.url });
  });

  after(async () => {
    await natsClient?.close();
    await Promise.all(running.map(killed));
    await nats?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const startPayments = () =>
    startChild("payments", PAYMENTS_BIN, ["-nats", nats.url, "-prefix", "payments", "-data", dir], running);
  const startInventory = (port: number) =>
    startChild(
      "inventory",
      INVENTORY_PYTHON,
      [
        "examples/orders/python/inventory.py",
        "--listen",
        `127.0.0.1:${port}`,
        "--db",
        path.join(dir, "inventory.db"),
      ],
      running,
    );
  const startOrders = () =>
    startChild(
      "orders",
      process.execPath,
      ["dist/examples/orders/orders-main.js", "127.0.0.1:0", path.join(dir, "orders.db")],
      running,
    );

  async function startBridge(): Promise<BridgeProcess> {
    const config = path.join(dir, "sessionbridge.yaml");
    writeFileSync(
      config,
      [
        "contracts:",
        `  importPaths: [${JSON.stringify(path.join(repoRoot(), "examples/orders/proto"))}]`,
        "  files:",
        "    - examples/orders/v1/orders.proto",
        "    - examples/inventory/v1/inventory.proto",
        "    - examples/payments/v1/payments.proto",
        "processes:",
        "  - name: orders",
        "    services: [examples.orders.v1.Orders]",
        `    location: grpc://127.0.0.1:${ordersPort}`,
        "  - name: inventory",
        "    services: [examples.inventory.v1.Inventory]",
        `    location: http://127.0.0.1:${inventoryPort}?codec=json`,
        "  - name: payments",
        "    services: [examples.payments.v1.Payments]",
        "    location: nats://payments?codec=json",
        "listeners:",
        `  nats: { url: ${JSON.stringify(nats.url)}, prefix: sb }`,
        `store: sqlite:${path.join(dir, "sessions.db")}`,
        "defaults:",
        // S11: retries often enough to ride out a restart within the test's patience.
        "  oneWay: { maxAttempts: 200, initialBackoffMs: 50, maxBackoffMs: 500, attemptTimeoutMs: 5000 }",
      ].join("\n"),
    );
    const bridge = await startBridgeProcess(
      ["--config", config, "--grpc", "127.0.0.1:0", "--store", `sqlite:${path.join(dir, "sessions.db")}`],
      // Readiness, not timing: a loaded machine may take long to start a bridge.
      120_000,
    );
    running.push(bridge.child);
    return bridge;
  }

  it("delivers what was accepted while each process was down once it is back, and applies every message once", async () => {
    const order = "P-1";
    let payments = await startPayments();
    let inventory = await startInventory(0);
    inventoryPort = inventory.ready.port as number;
    const orders = await startOrders();
    ordersPort = orders.ready.port as number;
    let bridge = await startBridge();
    const clients = () => ({
      orders: exampleClient("orders", bridge.address),
      inventory: exampleClient("inventory", bridge.address),
      payments: exampleClient("payments", bridge.address),
    });
    let c = clients();
    const closeClients = () => {
      for (const client of Object.values(c)) client.close();
    };

    // One order across the three processes; three sessions correlated by order_id.
    const opened = await unaryCall(c.orders, "Open", { order_id: order, customer: "ada" });
    await unaryCall(c.orders, "AddItem", { order_id: order, sku: "tea", qty: 3 });
    const reserved = await unaryCall<Reservation>(c.inventory, "Reserve", {
      order_id: order,
      sku: "tea",
      qty: 3,
    });
    expect(reserved.response.lines).to.deep.equal([{ sku: "tea", qty: 3, in_stock: 97 }]);
    const charged = await unaryCall<Payment>(c.payments, "Charge", { order_id: order, amount_cents: 1000 });
    expect(charged.response.charged_cents).to.equal(1000);
    const sessionIds = [opened, reserved, charged].map((r) => header(r.headers, "sb-session-id"));
    expect(new Set(sessionIds).size).to.equal(3);
    const [, inventorySession = "", paymentsSession = ""] = sessionIds;

    // kill -9 the Python process; a one-way Release is acknowledged while it is down (S9).
    await killed(inventory.child);
    await unaryCall(c.inventory, "Release", { order_id: order, sku: "tea", qty: 1 });
    // The process was gone when the bridge took it: its delivery is retried with backoff
    // (S11) until the process is back.
    inventory = await startInventory(inventoryPort);
    // A shared Get never overtakes the Release queued before it (S6): it sees it applied, once.
    const afterRelease = await unaryCall<Reservation>(c.inventory, "Get", { order_id: order });
    expect(afterRelease.response.lines).to.deep.equal([{ sku: "tea", qty: 2, in_stock: 98 }]);

    // kill -9 the Go process, accept a one-way Refund, then kill -9 the bridge too: the
    // refund waits in the bridge's outbox (S10) and goes out after both restart.
    await killed(payments.child);
    await unaryCall(c.payments, "Refund", { order_id: order, amount_cents: 300 });
    closeClients();
    await killed(bridge.child);
    payments = await startPayments();
    bridge = await startBridge();
    c = clients();
    const afterRefund = await unaryCall<Payment>(c.payments, "Get", { order_id: order });
    expect(afterRefund.response).to.deep.include({ charged_cents: 1000, refunded_cents: 300 });

    // The bridge redelivers with the original message id (S10): send both one-way
    // messages again, as it would, straight to the processes. They answer OK and change nothing.
    const [releaseId = ""] = await oneWayIds(bridge.address, inventorySession, "Release");
    const [refundId = ""] = await oneWayIds(bridge.address, paymentsSession, "Refund");
    expect(releaseId).to.not.equal("");
    expect(refundId).to.not.equal("");
    for (let i = 0; i < 2; i++) {
      const response = await fetch(
        `http://127.0.0.1:${inventoryPort}/examples.inventory.v1.Inventory/Release`,
        {
          method: "POST",
          headers: {
            "content-type": "application/json",
            "sb-session-id": inventorySession,
            "sb-message-id": releaseId,
          },
          body: JSON.stringify({ orderId: order, sku: "tea", qty: 1 }),
        },
      );
      expect(response.status).to.equal(200);
      expect(await response.json()).to.deep.equal({});
      const h = natsHeaders();
      h.set("content-type", "application/json");
      h.set("sb-session-id", paymentsSession);
      h.set("sb-message-id", refundId);
      const reply = await natsClient.request(
        "payments.Refund",
        JSON.stringify({ orderId: order, amountCents: 300 }),
        {
          headers: h,
          timeout: 10_000,
        },
      );
      expect(reply.headers?.get("Nats-Service-Error-Code") ?? "").to.equal("");
      expect(reply.string()).to.equal("{}");
    }
    const inventoryNow = await unaryCall<Reservation>(c.inventory, "Get", { order_id: order });
    expect(inventoryNow.response.lines).to.deep.equal([{ sku: "tea", qty: 2, in_stock: 98 }]);
    const paymentNow = await unaryCall<Payment>(c.payments, "Get", { order_id: order });
    expect(paymentNow.response).to.deep.include({ charged_cents: 1000, refunded_cents: 300 });

    // The ledgers survived their process: a restart of each replays them (no change).
    await killed(payments.child);
    await killed(inventory.child);
    // A write cut short by a crash leaves half a line: it was never answered, so it is dropped.
    appendFileSync(
      path.join(dir, "payments.ledger"),
      '{"messageId":"torn","sessionId":"x","refundedCents":9',
    );
    payments = await startPayments();
    inventory = await startInventory(inventoryPort);
    expect((await unaryCall<Payment>(c.payments, "Get", { order_id: order })).response).to.deep.include({
      charged_cents: 1000,
      refunded_cents: 300,
    });
    expect(
      (await unaryCall<Reservation>(c.inventory, "Get", { order_id: order })).response.lines,
    ).to.deep.equal([{ sku: "tea", qty: 2, in_stock: 98 }]);

    // A message id the processes have not seen is applied: the dedupe is by id, not by content.
    await unaryCall(c.payments, "Refund", { order_id: order, amount_cents: 300 });
    expect(
      (await unaryCall<Payment>(c.payments, "Get", { order_id: order })).response.refunded_cents,
    ).to.equal(600);

    // The order finishes across all three, each session ended by its own end operation.
    expect(
      (await unaryCall<Reservation>(c.inventory, "Commit", { order_id: order })).response.committed,
    ).to.equal(true);
    expect((await unaryCall<Payment>(c.payments, "Capture", { order_id: order })).response.captured).to.equal(
      true,
    );
    await unaryCall(c.orders, "Checkout", { order_id: order });
    closeClients();
  });
});
