import assert from "node:assert/strict";
import { status as Status } from "@grpc/grpc-js";
import { connect, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { decodeErrorInfo, decodeStatus } from "../../bridge/errors/rich-status.js";
import {
  ActRequest,
  type Instruction,
  LabItem,
  LabReply,
  OpenRequest,
} from "../../sdk/gen/sessionbridge/conformance/v1/lab.js";
import { endStatus, kind, openStream, type RawStream } from "../conformance-python/nats-stream-frames.js";
import { type NatsServerFixture, startNatsServer } from "../support/nats-server.js";
import { sleep } from "../support/wait.js";
import { buildConformance, type JavaLab, startJavaLab } from "./java-lab-process.js";

const PKG = "sessionbridge.conformance.v1";
const PREFIX = "javalab";

interface NatsAnswer {
  readonly headers: Record<string, string>;
  readonly data: Uint8Array;
}

/**
 * The Java reference service over NATS request-reply, driven directly as the bridge's NATS
 * outbound adapter does (docs/nats.md "Outbound").
 */
describe("conformance: Java reference service (direct, NATS)", function () {
  this.timeout(600_000);
  let nats: NatsServerFixture;
  let lab: JavaLab;
  let nc: NatsConnection;

  before(async () => {
    buildConformance("conformance/reference/java/build.sh");
    nats = await startNatsServer();
    lab = await startJavaLab({ transports: ["nats"], natsUrl: nats.url, natsSubjectPrefix: PREFIX });
    nc = await connect({ servers: nats.url });
  });

  after(async () => {
    await nc?.close();
    await lab?.stop();
    await nats?.stop();
  });

  this.timeout(30_000);

  async function request(
    method: string,
    payload: Uint8Array,
    meta: Record<string, string> = {},
    timeoutMs = 10_000,
  ): Promise<NatsAnswer> {
    const h = natsHeaders();
    for (const [k, v] of Object.entries(meta)) h.set(k, v);
    const msg = await nc.request(`${PREFIX}.${PKG}.${method}`, payload, { headers: h, timeout: timeoutMs });
    const headers: Record<string, string> = {};
    for (const [k, values] of msg.headers ?? []) headers[k.toLowerCase()] = values.join(", ");
    return { headers, data: msg.data };
  }

  const actBytes = (instruction: Partial<Instruction>) =>
    ActRequest.encode(ActRequest.fromPartial({ instruction })).finish();
  const sb = (id: string, extra: Record<string, string> = {}) => ({ "sb-session-id": id, ...extra });

  it("answers the harness protocol with the subject prefix it serves", () => {
    assert.equal(lab.addresses.nats, PREFIX);
    assert.equal(lab.addresses.grpc, "");
    assert.equal(lab.addresses.http, "");
  });

  it("serves binary and JSON requests with the session facts as headers [S1, S15]", async () => {
    await request("LabService.Open", new Uint8Array(), sb("n1"));
    const answer = await request(
      "LabService.Act",
      actBytes({ append: ["x"], observe: true, replyHeaders: { "x-h": "hv" } }),
      sb("n1", { "x-custom": "v1", "sb-timeout-ms": "20000" }),
    );
    const reply = LabReply.decode(answer.data);
    assert.deepEqual(reply.log, ["x"]);
    assert.equal(reply.observed?.transport, "nats");
    assert.equal(reply.observed?.operation, `${PKG}.LabService/Act`);
    assert.deepEqual(reply.observed?.metadata, { "x-custom": "v1" });
    const remaining = reply.observed?.deadlineRemainingMs ?? -1;
    assert.ok(remaining > 0 && remaining <= 20_000, `remaining ${remaining}`);
    assert.equal(answer.headers["x-h"], "hv");

    const json = await request(
      "LabService.Act",
      new TextEncoder().encode(JSON.stringify({ instruction: { append: ["j"] } })),
      sb("n1", { "Content-Type": "application/json" }),
    );
    assert.equal(json.headers["content-type"], "application/json");
    assert.deepEqual(JSON.parse(new TextDecoder().decode(json.data)), { log: ["x", "j"] });
  });

  it("answers faults with the error headers of docs/nats.md, the exact status in sb-status-bin [S14]", async () => {
    const message = "unavailable: emoji \u{1F9EA} and\r\nmore";
    const answer = await request(
      "PingLabService.Ping",
      actBytes({ fail: { code: 14, message, reason: "LAB_REASON", details: [] } }),
    );
    assert.equal(answer.headers["nats-service-error-code"], "503");
    assert.equal(answer.headers["nats-service-error"], "unavailable: emoji ? and more");
    assert.equal(answer.headers["sb-reason"], "LAB_REASON");
    const status = decodeStatus(Buffer.from(answer.headers["sb-status-bin"] ?? "", "base64"));
    assert.equal(status.code, 14);
    assert.equal(status.message, message);
    const first = status.details[0];
    assert.equal(decodeErrorInfo(first?.value ?? new Uint8Array()).reason, "LAB_REASON");

    const unknown = await request("LabService.Act", actBytes({}), sb("n-nobody"));
    assert.equal(unknown.headers["nats-service-error-code"], "404");
    assert.equal(unknown.headers["sb-reason"], "CORRELATION_ERROR");
  });

  it("abandons work past sb-timeout-ms: DEADLINE_EXCEEDED, nothing applied [S15]", async () => {
    await request("LabService.Open", new Uint8Array(), sb("n-deadline"));
    const late = await request(
      "LabService.Act",
      actBytes({ sleepMs: 3000, append: ["late"] }),
      sb("n-deadline", { "sb-timeout-ms": "300" }),
    );
    assert.equal(late.headers["sb-reason"], "DEADLINE_EXCEEDED");
    const peek = await request("LabService.Peek", actBytes({}), sb("n-deadline"));
    assert.deepEqual(LabReply.decode(peek.data).log, []);
  });

  it("applies pipelined requests of a session in arrival order [S6]", async () => {
    await request("LabService.Open", new Uint8Array(), sb("n-order"));
    const count = 32;
    const answers = await Promise.all(
      Array.from({ length: count }, (_, i) =>
        request(
          "LabService.Act",
          actBytes({ append: [String(i)], ...(i % 8 === 0 ? { sleepMs: 30 } : {}) }),
          sb("n-order"),
        ),
      ),
    );
    const expected = Array.from({ length: count }, (_, i) => String(i));
    for (const [i, a] of answers.entries())
      assert.deepEqual(LabReply.decode(a.data).log, expected.slice(0, i + 1));
  });

  const open = async (id: string) => {
    const opened = await request(
      "LabService.Open",
      OpenRequest.encode(OpenRequest.fromPartial({ tenant: "t", account: id })).finish(),
      sb(id),
    );
    assert.equal(opened.headers["sb-status-bin"], undefined);
  };
  const items = `${PREFIX}.${PKG}.LabService.Items`;
  const untilEnd = async (stream: RawStream) => {
    const bound = Date.now() + 20_000;
    while (kind(stream.frames.at(-1)) !== "end" && Date.now() < bound) await sleep(50);
    return stream.frames.at(-1);
  };

  it("streams Items as head, numbered msgs and an end; a fault ends it with sb-status-bin [S6, S14]", async () => {
    await open("n-items");
    const ok = openStream(
      nc,
      items,
      { count: 3, itemBytes: 2 },
      sb("n-items", { "sb-message-id": "m-items" }),
    );
    const failing = openStream(
      nc,
      items,
      { count: 1, fail: { code: Status.ABORTED, message: "stop", reason: "ENOUGH" } },
      sb("n-items"),
    );
    try {
      await ok.frame(5);
      assert.deepEqual(ok.frames.map(kind), ["head", "msg", "msg", "msg", "end"]);
      assert.equal(ok.frames[0]?.headers?.get("sb-session-id"), "n-items");
      assert.equal(ok.frames[0]?.headers?.get("sb-message-id"), "m-items");
      assert.ok((ok.frames[0]?.headers?.get("sb-stream-control") ?? "").length > 0);
      assert.deepEqual(
        ok.frames.slice(1, 4).map((m) => [m.headers?.get("sb-stream-seq"), LabItem.decode(m.data).index]),
        [
          ["1", 0],
          ["2", 1],
          ["3", 2],
        ],
      );
      assert.deepEqual(endStatus(ok.frames[4]), [Status.OK, ""]);
      const end = await failing.frame(3);
      assert.deepEqual(failing.frames.map(kind), ["head", "msg", "end"]);
      assert.equal(end.headers?.get("Nats-Service-Error-Code"), "409");
      assert.equal(end.headers?.get("sb-reason"), "ENOUGH");
      assert.deepEqual(endStatus(end), [Status.ABORTED, "ENOUGH"]);
    } finally {
      ok.close();
      failing.close();
    }
  });

  it("sends no more than the window unacked, and goes on as the reader acks", async () => {
    await open("n-window");
    const stream = openStream(nc, items, { count: 4 }, sb("n-window", { "sb-stream-window": "2" }));
    try {
      await stream.frame(3);
      // Nothing more comes until the reader acks; waiting longer can only let more arrive.
      await sleep(700);
      assert.deepEqual(stream.frames.map(kind), ["head", "msg", "msg"]);
      stream.ack(2);
      await stream.frame(5);
      stream.ack(4);
      assert.equal(kind(await stream.frame(6)), "end");
      assert.deepEqual(endStatus(stream.frames[5]), [Status.OK, ""]);
    } finally {
      stream.close();
    }
  });

  for (const full of [false, true]) {
    it(`stops at a cancel or the deadline ${full ? "while the window is full" : "between items"}, and the session serves on [S15]`, async () => {
      const id = `n-stop-${full}`;
      await open(id);
      const window = { "sb-stream-window": full ? "1" : "64" };
      const cancelled = openStream(nc, items, { count: 10_000, intervalMs: full ? 0 : 50 }, sb(id, window));
      try {
        await cancelled.frame(2);
        cancelled.cancel();
        assert.equal(endStatus(await untilEnd(cancelled))[0], Status.CANCELLED);
      } finally {
        cancelled.close();
      }
      const timed = openStream(
        nc,
        items,
        { count: 10_000, intervalMs: full ? 0 : 100 },
        sb(id, { ...window, "sb-timeout-ms": "400" }),
      );
      try {
        assert.equal(endStatus(await untilEnd(timed))[0], Status.DEADLINE_EXCEEDED);
      } finally {
        timed.close();
      }
      const acted = await request("LabService.Act", actBytes({ append: ["after"] }), sb(id));
      assert.deepEqual(LabReply.decode(acted.data).log, ["after"]);
    });
  }

  it("answers a stream refused before it is accepted with an end alone", async () => {
    const stream = openStream(nc, items, { count: 1 }, sb("n-items", { "sb-stream-window": "x" }));
    try {
      const end = await stream.frame(1);
      await sleep(200);
      assert.deepEqual(stream.frames.map(kind), ["end"]);
      assert.equal(endStatus(end)[0], Status.INVALID_ARGUMENT);
    } finally {
      stream.close();
    }
  });
});
