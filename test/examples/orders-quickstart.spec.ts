import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { expect } from "chai";
import { EnvelopeKind } from "../../sdk/gen/sessionbridge/v1/envelope.js";
import { createSessionServiceClient } from "../../sdk/ts/session-service-client.js";
import { type BridgeProcess, startBridgeProcess } from "../support/bridge-process.js";
import { failure, header, unaryCall } from "../support/grpc-call.js";
import { reasonOf } from "../support/lab-harness.js";
import { repoRoot } from "../support/repo-root.js";
import { waitFor } from "../support/wait.js";
import { type LaunchedExample, launchExample, messageOf as msgOf } from "./example-launcher.js";

const run = promisify(execFile);
const GRPCURL = path.join(repoRoot(), ".tools/bin/grpcurl");

interface Order {
  order_id: string;
  customer: string;
  items: { sku: string; qty: number }[];
  notes: string[];
  total_qty: number;
}

/** A client built from nothing but the example's .proto files. */
function ordersClient(address: string): grpc.Client {
  const definition = protoLoader.loadSync("examples/orders/v1/orders.proto", {
    includeDirs: [path.join(repoRoot(), "examples/orders/proto"), path.join(repoRoot(), "proto")],
    keepCase: true,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    examples: { orders: { v1: { Orders: grpc.ServiceClientConstructor } } };
  };
  return new pkg.examples.orders.v1.Orders(address, grpc.credentials.createInsecure());
}

async function grpcurl(...args: string[]): Promise<string> {
  const { stdout } = await run(GRPCURL, ["-plaintext", ...args]);
  return stdout;
}

/**
 * The README's start command: `npm start` runs dist/examples/orders/start.js, which
 * starts the example process and the bridge on its embedded defaults. Driven here from
 * grpcurl and from a client that knows only the .proto files.
 */
describe("quick start: the orders example behind npm start", function () {
  this.timeout(300_000);
  let example: LaunchedExample;
  let bridgeAddress: string;
  let output: string[];
  let client: grpc.Client;
  const order = `Q-${randomUUID().slice(0, 8)}`;

  before(async () => {
    example = await launchExample();
    bridgeAddress = example.addresses.grpc;
    output = example.lines;
    client = ordersClient(bridgeAddress);
  });

  after(async () => {
    client?.close();
    await example?.stop();
  });

  it("prints the commands to try once everything is ready", () => {
    const text = output.join("\n");
    expect(text).to.include(
      `-plaintext -d '{"order_id":"A-1","customer":"ada"}' ${bridgeAddress} examples.orders.v1.Orders/Open`,
    );
    expect(text).to.include("sessions list");
    expect(text).to.include(`/examples.inventory.v1.Inventory/Reserve`);
    expect(text).to.include("req sb.examples.payments.v1.Payments.Charge");
  });

  it("answers the README's curl over HTTP with the Connect protocol, and the session reaches gRPC too", async () => {
    const id = `H-${randomUUID().slice(0, 8)}`;
    const { stdout } = await run("curl", [
      "-s",
      "-i",
      "-H",
      "Content-Type: application/json",
      "-d",
      JSON.stringify({ orderId: id, customer: "ada" }),
      `http://${example.addresses.http}/examples.orders.v1.Orders/Open`,
    ]);
    expect(stdout).to.match(/^HTTP\/1\.1 200 /);
    const sessionId = /^sb-session-id: (\S+)\r?$/m.exec(stdout)?.[1];
    expect(sessionId).to.match(/^[A-Za-z0-9_-]{22}$/);
    expect(JSON.parse(stdout.slice(stdout.indexOf("\r\n\r\n") + 4))).to.deep.equal({
      orderId: id,
      customer: "ada",
    });
    const got = await unaryCall<Order>(client, "Get", { order_id: id });
    expect(header(got.headers, "sb-session-id")).to.equal(sessionId);
  });

  it("reports SERVING on grpc.health.v1.Health", async () => {
    expect(JSON.parse(await grpcurl(bridgeAddress, "grpc.health.v1.Health/Check"))).to.deep.equal({
      status: "SERVING",
    });
    const service = JSON.stringify({ service: "examples.orders.v1.Orders" });
    expect(
      JSON.parse(await grpcurl("-d", service, bridgeAddress, "grpc.health.v1.Health/Check")),
    ).to.deep.equal({
      status: "SERVING",
    });
  });

  it("lists its services through reflection and grpcurl can call them", async () => {
    const services = (await grpcurl(bridgeAddress, "list")).trim().split("\n");
    expect(services).to.include.members([
      "examples.orders.v1.Orders",
      "sessionbridge.v1.SessionService",
      "grpc.health.v1.Health",
    ]);
    const described = await grpcurl(bridgeAddress, "describe", "examples.orders.v1.Orders");
    for (const method of ["Open", "AddItem", "Get", "Note", "Checkout"])
      expect(described).to.include(`rpc ${method} (`);
    const id = `G-${randomUUID().slice(0, 8)}`;
    const opened = JSON.parse(
      await grpcurl(
        "-d",
        JSON.stringify({ order_id: id, customer: "grace" }),
        bridgeAddress,
        "examples.orders.v1.Orders/Open",
      ),
    );
    // Reflection serves the compiler's descriptors (json_name set), so grpcurl prints proto3 JSON names.
    expect(opened).to.deep.equal({ orderId: id, customer: "grace" });
    const listed = JSON.parse(
      await grpcurl("-d", "{}", bridgeAddress, "sessionbridge.v1.SessionService/List"),
    ) as {
      sessions: { correlation: Record<string, string> }[];
    };
    expect(listed.sessions.some((s) => s.correlation.order_id === id)).to.equal(true);
  });

  it("keeps an order as a session from Open to Checkout (S1-S12)", async () => {
    // S1/S2: Open starts a session and names it.
    const opened = await unaryCall<Order>(client, "Open", { order_id: order, customer: "ada" });
    const sessionId = header(opened.headers, "sb-session-id");
    expect(sessionId).to.match(/^[A-Za-z0-9_-]{22}$/);

    // S3: Open again with the same order joins the live session.
    const again = await unaryCall<Order>(client, "Open", { order_id: order, customer: "ada" });
    expect(header(again.headers, "sb-session-id")).to.equal(sessionId);

    // S4: an order that was never opened is a correlation error.
    const stray = await failure(unaryCall(client, "AddItem", { order_id: `${order}-x`, sku: "tea", qty: 1 }));
    expect(stray.code).to.equal(grpc.status.NOT_FOUND);
    expect(reasonOf(stray)).to.equal("CORRELATION_ERROR");

    // S6/S7: numbered, pipelined additions apply one at a time, in order.
    await Promise.all(
      ["tea", "jam", "scone"].map((sku, i) =>
        unaryCall<Order>(
          client,
          "AddItem",
          { order_id: order, sku, qty: i + 1 },
          { "sb-seq": String(i + 1) },
        ),
      ),
    );
    const dup = await unaryCall<Order>(
      client,
      "AddItem",
      { order_id: order, sku: "tea", qty: 1 },
      { "sb-seq": "1" },
    );
    expect(dup.response.items.map((i) => i.sku)).to.deep.equal(["tea"]);
    const gap = await failure(
      unaryCall(client, "AddItem", { order_id: order, sku: "x", qty: 1 }, { "sb-seq": "9" }),
    );
    expect(reasonOf(gap)).to.equal("OUT_OF_SEQUENCE");

    // S8: a retried call with its Idempotency-Key applies once.
    const md = { "idempotency-key": `${order}-honey` };
    await unaryCall(client, "AddItem", { order_id: order, sku: "honey", qty: 1 }, md);
    await unaryCall(client, "AddItem", { order_id: order, sku: "honey", qty: 1 }, md);

    // S9: a one-way note is acknowledged at once and applied afterwards.
    await unaryCall(client, "Note", { order_id: order, text: "ring twice" });
    await waitFor(
      async () => (await unaryCall<Order>(client, "Get", { order_id: order })).response.notes.length === 1,
    );
    const got = await unaryCall<Order>(client, "Get", { order_id: order });
    expect(got.response.items.map((i) => i.sku)).to.deep.equal(["tea", "jam", "scone", "honey"]);
    expect(got.response.total_qty).to.equal(1 + 2 + 3 + 1);

    // S12: Checkout ends the session; later messages get NOT_FOUND.
    const receipt = await unaryCall<Order>(client, "Checkout", { order_id: order });
    expect(receipt.response.notes).to.deep.equal(["ring twice"]);
    const late = await failure(
      unaryCall(client, "Get", { order_id: order }, { "sb-session-id": sessionId ?? "" }),
    );
    expect(late.code).to.equal(grpc.status.NOT_FOUND);
    expect(reasonOf(late)).to.equal("SESSION_CLOSED");

    // The CLI shows the session and its journal.
    const cli = path.join(repoRoot(), "dist/cli/main.js");
    const shown = await run(process.execPath, [
      cli,
      "sessions",
      "show",
      "--bridge",
      bridgeAddress,
      sessionId ?? "",
    ]);
    expect(shown.stdout).to.match(/state\s+closed/);
    const history = await run(process.execPath, [
      cli,
      "sessions",
      "history",
      "--bridge",
      bridgeAddress,
      sessionId ?? "",
    ]);
    expect(history.stdout).to.include("ONE_WAY  /examples.orders.v1.Orders/Note");
    expect(history.stdout).to.include("event=session.ended state=closed reason=end-operation");
  });
});

/** Lines of a child's stdout, collected as they come. */
function collect(child: ChildProcess): string[] {
  const lines: string[] = [];
  createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (l) => lines.push(l));
  child.stderr?.on("data", (d: Buffer) => lines.push(d.toString()));
  return lines;
}

function exitOf(child: ChildProcess): Promise<number | string> {
  if (child.exitCode !== null || child.signalCode !== null)
    return Promise.resolve(child.exitCode ?? child.signalCode ?? -1);
  return new Promise((resolve) => child.once("exit", (code, signal) => resolve(code ?? signal ?? -1)));
}

/** Sends `signal` and waits for a log line with message `msg` (signals of one kind do not queue). */
async function signalUntil(child: ChildProcess, lines: string[], signal: NodeJS.Signals, msg: string) {
  const seen = lines.filter((l) => msgOf(l) === msg).length;
  child.kill(signal);
  await waitFor(() => lines.filter((l) => msgOf(l) === msg).length > seen, 60_000, msg);
}

/** Resolves once the bridge has journaled a request for `operation` in the session: it is in flight. */
async function journaled(bridge: string, sessionId: string, operation: string): Promise<void> {
  const sessions = createSessionServiceClient(bridge, { deadlineMs: 5000 });
  try {
    await waitFor(async () => {
      for await (const entry of sessions.history({ sessionId })) {
        const e = entry.envelope;
        if (e?.kind === EnvelopeKind.ENVELOPE_KIND_REQUEST && e.operation.endsWith(`/${operation}`))
          return true;
      }
      return false;
    }, 60_000);
  } finally {
    sessions.close();
  }
}

describe("npm start and Ctrl-C", function () {
  this.timeout(300_000);
  let example: LaunchedExample;
  let launcher: ChildProcess;
  let lines: string[];
  let ordersPid: number;
  let client: grpc.Client;

  beforeEach(async () => {
    example = await launchExample();
    launcher = example.child;
    lines = example.lines;
    ordersPid = example.pid("orders");
    client = ordersClient(example.addresses.grpc);
  });

  afterEach(async () => {
    client?.close();
    try {
      process.kill(ordersPid, "SIGCONT");
    } catch {
      // already gone
    }
    await example.stop();
  });

  /** An order whose AddItem is in flight: the process is stopped (SIGSTOP) while it holds the call. */
  async function callInFlight() {
    const order = `S-${randomUUID().slice(0, 8)}`;
    const opened = await unaryCall<Order>(client, "Open", { order_id: order, customer: "ada" });
    process.kill(ordersPid, "SIGSTOP");
    const pending = unaryCall<Order>(client, "AddItem", { order_id: order, sku: "tea", qty: 2 });
    pending.catch(() => {});
    await journaled(example.addresses.grpc, header(opened.headers, "sb-session-id") ?? "", "AddItem");
    return { pending };
  }

  it("drains on Ctrl-C, ignores the second signal, and exits with the bridge's status 0", async () => {
    const { pending } = await callInFlight();
    // Ctrl-C reaches npm and the launcher; both forward it: the bridge sees it twice.
    await signalUntil(launcher, lines, "SIGINT", "draining");
    await signalUntil(
      launcher,
      lines,
      "SIGINT",
      "drain in progress, signal ignored: a third signal forces the exit",
    );
    process.kill(ordersPid, "SIGCONT");
    const added = await pending;
    expect(added.response.items).to.deep.equal([{ sku: "tea", qty: 2 }]);
    expect(await exitOf(launcher)).to.equal(0);
    expect(lines.map(msgOf)).to.include("stopped");
  });

  it("forces the bridge out on the third signal and exits with its status 1", async () => {
    const { pending } = await callInFlight();
    await signalUntil(launcher, lines, "SIGINT", "draining");
    await signalUntil(
      launcher,
      lines,
      "SIGINT",
      "drain in progress, signal ignored: a third signal forces the exit",
    );
    await signalUntil(launcher, lines, "SIGINT", "forced exit during drain");
    expect((await failure(pending)).code).to.equal(grpc.status.UNAVAILABLE);
    process.kill(ordersPid, "SIGCONT");
    expect(await exitOf(launcher)).to.equal(1);
  });
});

describe("the orders example after kill -9 of the bridge and the process (S10)", function () {
  this.timeout(300_000);
  let dir: string;
  let db: string;
  const running: ChildProcess[] = [];

  before(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), "sb-orders-"));
    db = path.join(dir, "orders.db");
  });

  after(async () => {
    for (const child of running) child.kill("SIGKILL");
    await Promise.all(running.map(exitOf));
    rmSync(dir, { recursive: true, force: true });
  });

  /** The example process as npm start runs it, on `address`, with its orders in `db`. */
  async function startOrders(address: string): Promise<{ child: ChildProcess; port: number }> {
    const child = spawn(process.execPath, ["dist/examples/orders/orders-main.js", address, db], {
      cwd: repoRoot(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    running.push(child);
    const lines = collect(child);
    await waitFor(() => lines.some((l) => msgOf(l) === "orders process ready"), 60_000, "orders ready");
    const ready = lines.find((l) => msgOf(l) === "orders process ready") ?? "";
    return { child, port: (JSON.parse(ready) as { port: number }).port };
  }

  function startBridge(processPort: number): Promise<BridgeProcess> {
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
        `    location: grpc://127.0.0.1:${processPort}`,
      ].join("\n"),
    );
    return startBridgeProcess(
      ["--config", config, "--grpc", "127.0.0.1:0", "--store", `sqlite:${path.join(dir, "sessions.db")}`],
      // Readiness, not timing: a loaded machine may take long to start a bridge.
      120_000,
    ).then((b) => {
      running.push(b.child);
      return b;
    });
  }

  it("keeps the order and applies a redelivered note once", async () => {
    const order = `K-${randomUUID().slice(0, 8)}`;
    const first = await startOrders("127.0.0.1:0");
    let bridge = await startBridge(first.port);
    let client = ordersClient(bridge.address);
    const opened = await unaryCall<Order>(client, "Open", { order_id: order, customer: "ada" });
    const sessionId = header(opened.headers, "sb-session-id") ?? "";
    await unaryCall(client, "AddItem", { order_id: order, sku: "tea", qty: 2 }, { "sb-seq": "1" });
    await unaryCall(client, "AddItem", { order_id: order, sku: "jam", qty: 1 }, { "sb-seq": "2" });
    await unaryCall(client, "Note", { order_id: order, text: "first" });
    await waitFor(
      async () => (await unaryCall<Order>(client, "Get", { order_id: order })).response.notes.length === 1,
    );
    // A note accepted while the process cannot take it: journaled, not yet delivered.
    first.child.kill("SIGSTOP");
    await unaryCall(client, "Note", { order_id: order, text: "second" });
    client.close();
    bridge.child.kill("SIGKILL");
    first.child.kill("SIGKILL");
    await Promise.all([exitOf(bridge.child), exitOf(first.child)]);

    const second = await startOrders(`127.0.0.1:${first.port}`);
    bridge = await startBridge(second.port);
    client = ordersClient(bridge.address);
    const get = async () => (await unaryCall<Order>(client, "Get", { order_id: order })).response;
    // The order is intact, and the note left undelivered goes out after the restart.
    await waitFor(async () => (await get()).notes.length === 2, 60_000, "both notes");
    let got = await get();
    expect(got.items).to.deep.equal([
      { sku: "tea", qty: 2 },
      { sku: "jam", qty: 1 },
    ]);
    expect(got.total_qty).to.equal(3);
    expect(got.notes).to.deep.equal(["first", "second"]);
    // Numbering carries on where it stopped.
    await unaryCall(client, "AddItem", { order_id: order, sku: "scone", qty: 1 }, { "sb-seq": "3" });

    // The bridge redelivers a note with its original message id (S10): send the first one
    // again, as it would, straight to the process. It answers OK and changes nothing.
    const sessions = createSessionServiceClient(bridge.address, { deadlineMs: 5000 });
    const noteIds: string[] = [];
    for await (const entry of sessions.history({ sessionId })) {
      const e = entry.envelope;
      if (e?.kind === EnvelopeKind.ENVELOPE_KIND_ONE_WAY && e.operation.endsWith("/Note"))
        noteIds.push(e.messageId);
    }
    sessions.close();
    expect(noteIds).to.have.length(2);
    const direct = ordersClient(`127.0.0.1:${second.port}`);
    const redeliver = (messageId: string, text: string) =>
      unaryCall(
        direct,
        "Note",
        { order_id: order, text },
        { "sb-session-id": sessionId, "sb-message-id": messageId },
      );
    await redeliver(noteIds[0] ?? "", "first");
    await redeliver(noteIds[0] ?? "", "first");
    got = await get();
    expect(got.notes).to.deep.equal(["first", "second"]);
    // A message id the process has not seen is applied: the dedupe is by id, not by text.
    await redeliver("fresh-message-id", "first");
    expect((await get()).notes).to.deep.equal(["first", "second", "first"]);
    direct.close();
    client.close();
  });
});
