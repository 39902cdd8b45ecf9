import { jetstream, jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { expect } from "chai";
import { loadBridgeSetup } from "../../../bridge/config/check-config.js";
import type { BridgeConfig } from "../../../bridge/config/config.js";
import { BridgeError } from "../../../bridge/errors/bridge-error.js";
import { startBridgeRuntime } from "../../../cli/bridge-runtime.js";
import { LAB_CONFIG, type LabHarness, startLabHarness } from "../../support/lab-harness.js";
import { type LabOp, loadLabDefinition } from "../../support/lab-process.js";
import { type NatsServerFixture, startNatsServer } from "../../support/nats-server.js";
import { waitFor } from "../../support/wait.js";

const STREAM = "LAB_FIRE";
const SUBJECT = "intake.lab.fire";

function encodeOp(op: LabOp): Uint8Array {
  const definition = loadLabDefinition() as unknown as Record<
    string,
    Record<string, { requestSerialize(value: object): Buffer }>
  >;
  const fire = definition["test.lab.v1.Counter"]?.Fire;
  if (fire === undefined) throw new Error("no Counter/Fire in the lab contracts");
  return new Uint8Array(fire.requestSerialize(op));
}

describe("NATS: durable one-way intake from JetStream (S9, S10)", function () {
  this.timeout(60_000);
  let server: NatsServerFixture;
  let nc: NatsConnection;
  let harness: LabHarness;

  const texts = (key: string): string[] =>
    harness.lab.deliveries.filter((d) => d.key === key && d.method === "Fire").map((d) => d.text);

  before(async () => {
    server = await startNatsServer({ jetstream: true });
    nc = await connect({ servers: server.url });
    const jsm = await jetstreamManager(nc);
    await jsm.streams.add({ name: STREAM, subjects: [SUBJECT] });
    harness = await startLabHarness("sqlite", {
      adjust: (config: BridgeConfig): BridgeConfig => ({
        ...config,
        listeners: {
          ...config.listeners,
          nats: {
            url: server.url,
            prefix: "sb",
            queue: "sessionbridge",
            token: undefined,
            user: undefined,
            password: undefined,
            credsFile: undefined,
            nkeyFile: undefined,
            tls: undefined,
            intake: [
              {
                operation: "test.lab.v1.Counter.Fire",
                stream: STREAM,
                durable: "sb-fire",
                filterSubject: undefined,
              },
            ],
          },
        },
      }),
    });
  });

  after(async () => {
    await harness?.close();
    await nc?.close();
    await server?.stop();
  });

  it("journals and delivers each stream message in order, then acknowledges it", async () => {
    await harness.client.unary("Counter", "Start", { key: "js-1" });
    const js = jetstream(nc);
    for (const text of ["m1", "m2", "m3"]) {
      await js.publish(SUBJECT, encodeOp({ key: "js-1", text }), { msgID: `js-1-${text}` });
    }
    await waitFor(() => texts("js-1").length === 3, 10_000, "three deliveries");
    expect(texts("js-1")).to.deep.equal(["m1", "m2", "m3"]);
    const jsm = await jetstreamManager(nc);
    await waitFor(
      async () => (await jsm.consumers.info(STREAM, "sb-fire")).num_ack_pending === 0,
      10_000,
      "every message acknowledged",
    );
    const info = await jsm.consumers.info(STREAM, "sb-fire");
    expect(info.delivered.stream_seq).to.equal(3);
    expect(info.ack_floor.stream_seq).to.equal(3);
  });

  it("S8: two stream messages with one Idempotency-Key reach the process once", async () => {
    await harness.client.unary("Counter", "Start", { key: "js-2" });
    const js = jetstream(nc);
    for (const id of ["a", "b"]) {
      const hdrs = natsHeaders();
      hdrs.set("Idempotency-Key", "same-key");
      await js.publish(SUBJECT, encodeOp({ key: "js-2", text: "once" }), {
        msgID: `js-2-${id}`,
        headers: hdrs,
      });
    }
    await js.publish(SUBJECT, encodeOp({ key: "js-2", text: "after" }));
    await waitFor(() => texts("js-2").includes("after"), 10_000, "the message after the duplicate");
    expect(texts("js-2")).to.deep.equal(["once", "after"]);
  });

  it("a message that can never be accepted is terminated and does not block the ones after it", async () => {
    const js = jetstream(nc);
    await js.publish(SUBJECT, encodeOp({ key: "no-such-session", text: "lost-cause" }));
    await js.publish(SUBJECT, new Uint8Array([0xff, 0xff, 0xff]));
    await harness.client.unary("Counter", "Start", { key: "js-3" });
    await js.publish(SUBJECT, encodeOp({ key: "js-3", text: "next" }));
    await waitFor(() => texts("js-3").includes("next"), 10_000, "the message after the refused ones");
    expect(texts("no-such-session")).to.deep.equal([]);
  });

  it("refuses to start with an intake for an operation that is not one-way, or a stream that does not exist", async () => {
    const setup = loadBridgeSetup({ file: LAB_CONFIG, overrides: { store: "memory" } });
    for (const [operation, stream, expected] of [
      ["test.lab.v1.Counter.Do", STREAM, "not a served one-way operation"],
      ["test.lab.v1.Counter.Fire", "NO_SUCH_STREAM", "stream not found"],
    ] as const) {
      const nats = {
        ...harness.config.listeners.nats,
        intake: [{ operation, stream, durable: "x", filterSubject: undefined }],
      };
      try {
        const runtime = await startBridgeRuntime({
          config: {
            ...setup.config,
            listeners: { ...setup.config.listeners, nats } as BridgeConfig["listeners"],
          },
          contracts: setup.contracts,
        });
        await runtime.stop(0);
        expect.fail(`started with an intake on ${operation} from ${stream}`);
      } catch (error) {
        expect(error).to.be.instanceOf(BridgeError);
        expect((error as BridgeError).reason).to.equal("INVALID_CONFIG");
        expect((error as BridgeError).message).to.include(expected);
      }
    }
  });

  it("S10: messages published while the bridge is down are delivered after it restarts", async () => {
    await harness.client.unary("Counter", "Start", { key: "js-4" });
    await harness.stopBridge();
    const js = jetstream(nc);
    await js.publish(SUBJECT, encodeOp({ key: "js-4", text: "while-down-1" }));
    await js.publish(SUBJECT, encodeOp({ key: "js-4", text: "while-down-2" }));
    await harness.restartBridge();
    await waitFor(() => texts("js-4").length === 2, 15_000, "both messages after the restart");
    expect(texts("js-4")).to.deep.equal(["while-down-1", "while-down-2"]);
  });
});
