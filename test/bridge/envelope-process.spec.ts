import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { expect } from "chai";
import { loadBridgeSetup } from "../../bridge/config/check-config.js";
import { type BridgeRuntime, startBridgeRuntime } from "../../cli/bridge-runtime.js";
import { AddItem, OpenOrder, Order } from "../../sdk/gen/examples/orders/v1/orders.js";
import { type Envelope, EnvelopeKind } from "../../sdk/gen/sessionbridge/v1/envelope.js";
import { ProcessService } from "../../sdk/gen/sessionbridge/v1/process.js";
import { failure, header, unaryCall } from "../support/grpc-call.js";
import { reasonOf } from "../support/lab-harness.js";
import { repoRoot } from "../support/repo-root.js";
import { waitFor } from "../support/wait.js";

/**
 * An envelope-native process (sessionbridge.v1.Process): it receives every message as an
 * Envelope with the session facts in its fields, and answers with RESPONSE, ACK or FAULT.
 */
describe("envelope-native processes", () => {
  const received: Envelope[] = [];
  let server: grpc.Server;
  let runtime: BridgeRuntime;
  let client: grpc.Client;
  let dir: string;

  before(async () => {
    server = new grpc.Server();
    server.addService(ProcessService, {
      deliver: (call: grpc.ServerUnaryCall<Envelope, Envelope>, callback: grpc.sendUnaryData<Envelope>) => {
        const envelope = call.request;
        received.push(envelope);
        const reply = (fields: Partial<Envelope>): void =>
          callback(null, { ...envelope, payload: Buffer.alloc(0), inReplyTo: envelope.messageId, ...fields });
        if (envelope.kind === EnvelopeKind.ENVELOPE_KIND_ONE_WAY)
          return reply({ kind: EnvelopeKind.ENVELOPE_KIND_ACK });
        if (envelope.operation.endsWith("/AddItem")) {
          const item = AddItem.decode(envelope.payload);
          if (item.qty === 0) {
            return reply({
              kind: EnvelopeKind.ENVELOPE_KIND_FAULT,
              fault: {
                code: 3,
                reason: "QTY_ZERO",
                message: "qty must be at least 1",
                details: [],
                metadata: {},
              },
            });
          }
          const order: Order = {
            orderId: item.orderId,
            customer: "",
            items: [item],
            notes: [],
            totalQty: item.qty,
          };
          return reply({
            kind: EnvelopeKind.ENVELOPE_KIND_RESPONSE,
            payload: Buffer.from(Order.encode(order).finish()),
          });
        }
        const open = OpenOrder.decode(envelope.payload);
        const order: Order = {
          orderId: open.orderId,
          customer: open.customer,
          items: [],
          notes: [],
          totalQty: 0,
        };
        return reply({
          kind: EnvelopeKind.ENVELOPE_KIND_RESPONSE,
          payload: Buffer.from(Order.encode(order).finish()),
        });
      },
    });
    const port = await new Promise<number>((resolve, reject) =>
      server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (e, p) =>
        e ? reject(e) : resolve(p),
      ),
    );
    dir = mkdtempSync(path.join(os.tmpdir(), "sb-envelope-"));
    const file = path.join(dir, "sessionbridge.yaml");
    writeFileSync(
      file,
      [
        "contracts:",
        `  importPaths: [${JSON.stringify(path.join(repoRoot(), "examples/orders/proto"))}]`,
        "  files: [examples/orders/v1/orders.proto]",
        "processes:",
        "  - name: orders",
        "    services: [examples.orders.v1.Orders]",
        `    location: grpc://127.0.0.1:${port}`,
        "    envelope: true",
        "listeners: { grpc: 127.0.0.1:0 }",
        "store: memory",
      ].join("\n"),
    );
    const setup = loadBridgeSetup({ file });
    runtime = await startBridgeRuntime(setup);
    const definition = protoLoader.loadSync("examples/orders/v1/orders.proto", {
      includeDirs: [path.join(repoRoot(), "examples/orders/proto"), path.join(repoRoot(), "proto")],
      keepCase: true,
    });
    const pkg = grpc.loadPackageDefinition(definition) as unknown as {
      examples: { orders: { v1: { Orders: grpc.ServiceClientConstructor } } };
    };
    client = new pkg.examples.orders.v1.Orders(runtime.grpc.address, grpc.credentials.createInsecure());
  });

  after(async () => {
    client.close();
    await runtime.stop(1000);
    server.forceShutdown();
    rmSync(dir, { recursive: true, force: true });
  });

  it("delivers each message as an Envelope carrying the session facts", async () => {
    const out = await unaryCall<{ order_id: string; customer: string }>(
      client,
      "Open",
      { order_id: "E-1", customer: "eve" },
      { "x-trace-me": "yes" },
    );
    expect(out.response).to.deep.include({ order_id: "E-1", customer: "eve" });
    const envelope = received.at(-1);
    expect(envelope?.kind).to.equal(EnvelopeKind.ENVELOPE_KIND_REQUEST);
    expect(envelope?.operation).to.equal("/examples.orders.v1.Orders/Open");
    expect(envelope?.sessionId).to.equal(header(out.headers, "sb-session-id"));
    expect(envelope?.messageId).to.equal(header(out.headers, "sb-message-id"));
    expect(envelope?.correlation).to.deep.equal({ order_id: "E-1" });
    expect(envelope?.principal).to.equal("anonymous");
    expect(envelope?.codec).to.equal("proto");
    expect(envelope?.metadata["x-trace-me"]).to.equal("yes");
    expect(envelope?.traceparent).to.match(/^00-/);
  });

  it("turns a FAULT envelope into the caller's error, code and reason intact (S14)", async () => {
    const err = await failure(unaryCall(client, "AddItem", { order_id: "E-1", sku: "x", qty: 0 }));
    expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
    expect(err.details).to.equal("qty must be at least 1");
    expect(reasonOf(err)).to.equal("QTY_ZERO");
  });

  it("delivers one-way messages as ONE_WAY envelopes and records the ACK", async () => {
    await unaryCall(client, "Note", { order_id: "E-1", text: "hello" });
    await waitFor(() => received.some((e) => e.kind === EnvelopeKind.ENVELOPE_KIND_ONE_WAY));
    const note = received.find((e) => e.kind === EnvelopeKind.ENVELOPE_KIND_ONE_WAY);
    expect(note?.operation).to.equal("/examples.orders.v1.Orders/Note");
  });
});
