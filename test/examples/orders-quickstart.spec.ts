import { type ChildProcess, execFile, spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { expect } from "chai";
import { failure, header, unaryCall } from "../support/grpc-call.js";
import { reasonOf } from "../support/lab-harness.js";
import { repoRoot } from "../support/repo-root.js";
import { sleep, waitFor } from "../support/wait.js";

const run = promisify(execFile);
const BRIDGE = "127.0.0.1:50051";
const GRPCURL = path.join(repoRoot(), ".tools/bin/grpcurl");

interface Order {
  order_id: string;
  customer: string;
  items: { sku: string; qty: number }[];
  notes: string[];
  total_qty: number;
}

/** A client built from nothing but the example's .proto files. */
function ordersClient(): grpc.Client {
  const definition = protoLoader.loadSync("examples/orders/v1/orders.proto", {
    includeDirs: [path.join(repoRoot(), "examples/orders/proto"), path.join(repoRoot(), "proto")],
    keepCase: true,
    defaults: true,
  });
  const pkg = grpc.loadPackageDefinition(definition) as unknown as {
    examples: { orders: { v1: { Orders: grpc.ServiceClientConstructor } } };
  };
  return new pkg.examples.orders.v1.Orders(BRIDGE, grpc.credentials.createInsecure());
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
  this.timeout(60_000);
  let launcher: ChildProcess;
  const output: string[] = [];
  let client: grpc.Client;
  const order = `Q-${randomUUID().slice(0, 8)}`;

  before(async () => {
    launcher = spawn(process.execPath, ["dist/examples/orders/start.js"], {
      cwd: repoRoot(),
      stdio: ["ignore", "pipe", "pipe"],
    });
    createInterface({ input: launcher.stdout as NodeJS.ReadableStream }).on("line", (line) =>
      output.push(line),
    );
    launcher.stderr?.on("data", (d: Buffer) => output.push(d.toString()));
    await waitFor(
      () => output.some((l) => l.includes("Ctrl-C stops both")),
      20_000,
      `npm start ready; output: ${output.join("\n")}`,
    );
    client = ordersClient();
  });

  after(async () => {
    client?.close();
    launcher.kill("SIGTERM");
    await Promise.race([new Promise((r) => launcher.once("exit", r)), sleep(10_000)]);
  });

  it("prints the commands to try once both are ready", () => {
    const text = output.join("\n");
    expect(text).to.include(
      `-plaintext -d '{"order_id":"A-1","customer":"ada"}' ${BRIDGE} examples.orders.v1.Orders/Open`,
    );
    expect(text).to.include("sessions list");
  });

  it("reports SERVING on grpc.health.v1.Health", async () => {
    expect(JSON.parse(await grpcurl(BRIDGE, "grpc.health.v1.Health/Check"))).to.deep.equal({
      status: "SERVING",
    });
    const service = JSON.stringify({ service: "examples.orders.v1.Orders" });
    expect(JSON.parse(await grpcurl("-d", service, BRIDGE, "grpc.health.v1.Health/Check"))).to.deep.equal({
      status: "SERVING",
    });
  });

  it("lists its services through reflection and grpcurl can call them", async () => {
    const services = (await grpcurl(BRIDGE, "list")).trim().split("\n");
    expect(services).to.include.members([
      "examples.orders.v1.Orders",
      "sessionbridge.v1.SessionService",
      "grpc.health.v1.Health",
    ]);
    const described = await grpcurl(BRIDGE, "describe", "examples.orders.v1.Orders");
    for (const method of ["Open", "AddItem", "Get", "Note", "Checkout"])
      expect(described).to.include(`rpc ${method} (`);
    const id = `G-${randomUUID().slice(0, 8)}`;
    const opened = JSON.parse(
      await grpcurl(
        "-d",
        JSON.stringify({ order_id: id, customer: "grace" }),
        BRIDGE,
        "examples.orders.v1.Orders/Open",
      ),
    );
    // Reflection serves the compiler's descriptors (json_name set), so grpcurl prints proto3 JSON names.
    expect(opened).to.deep.equal({ orderId: id, customer: "grace" });
    const listed = JSON.parse(await grpcurl("-d", "{}", BRIDGE, "sessionbridge.v1.SessionService/List")) as {
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
    const shown = await run(process.execPath, [cli, "sessions", "show", sessionId ?? ""]);
    expect(shown.stdout).to.match(/state\s+closed/);
    const history = await run(process.execPath, [cli, "sessions", "history", sessionId ?? ""]);
    expect(history.stdout).to.include("ONE_WAY  /examples.orders.v1.Orders/Note");
    expect(history.stdout).to.include("event=session.ended state=closed reason=end-operation");
  });
});
