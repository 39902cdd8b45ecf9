import assert from "node:assert/strict";
import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Metadata, status as Status } from "@grpc/grpc-js";
import { Any } from "../../sdk/gen/google/protobuf/any.js";
import { ActRequest, LabReply, PostAck } from "../../sdk/gen/sessionbridge/conformance/v1/lab.js";
import { sleep } from "../support/wait.js";
import {
  buildConformance,
  type JavaLab,
  type LabClients,
  labClients,
  startJavaLab,
} from "./java-lab-process.js";
import { act, endedAtDeadline, fault, items, open, session, stream, unary } from "./lab-call.js";

const DOMAIN = "sessionbridge.conformance";

/**
 * The Java reference service, driven directly over gRPC as the conformance runner does in
 * `direct` mode: one check per duty of lab.proto's header, with the rule it belongs to.
 */
describe("conformance: Java reference service (direct, gRPC)", function () {
  // The first build on a fresh machine downloads grpc-java and protoc from Maven Central.
  this.timeout(600_000);
  let lab: JavaLab;
  let clients: LabClients;
  let stateDir: string;

  before(async () => {
    buildConformance("conformance/reference/java/build.sh");
    stateDir = mkdtempSync(path.join(os.tmpdir(), "sb-java-lab-"));
    lab = await startJavaLab({ stateDir });
    clients = labClients(lab.addresses.grpc);
  });

  after(async () => {
    clients?.close();
    await lab?.stop();
    rmSync(stateDir, { recursive: true, force: true });
  });

  this.timeout(30_000);

  it("answers the harness protocol with the gRPC address it bound, and no other transport", () => {
    assert.match(lab.addresses.grpc, /^127\.0\.0\.1:\d+$/);
    assert.equal(lab.addresses.http, "");
    assert.equal(lab.addresses.nats, "");
  });

  it("keeps one log per session and none shared [S1]; Open of a live id keeps its log [S3]", async () => {
    await unary(clients.lab, "open", open("t", "a1"), session("s1-a"));
    await unary(clients.lab, "open", open("t", "a2"), session("s1-b"));
    await unary(clients.lab, "act", act({ append: ["x"] }), session("s1-a"));
    const b = await unary<LabReply>(clients.lab, "peek", act(), session("s1-b"));
    assert.deepEqual(b.reply.log, []);
    const again = await unary<LabReply>(
      clients.lab,
      "open",
      open("t", "a1", { append: ["y"] }),
      session("s1-a"),
    );
    assert.deepEqual(again.reply.log, ["x", "y"]);
  });

  it("answers NOT_FOUND CORRELATION_ERROR for an unknown session and creates nothing [S4]", async () => {
    const f = await fault(unary(clients.lab, "act", act({ append: ["x"] }), session("s4-unknown")));
    assert.equal(f.code, Status.NOT_FOUND);
    assert.equal(f.info?.reason, "CORRELATION_ERROR");
    assert.equal(f.info?.domain, DOMAIN);
    const again = await fault(unary(clients.lab, "peek", act(), session("s4-unknown")));
    assert.equal(again.info?.reason, "CORRELATION_ERROR");
  });

  it("ends a session with Finish after applying it; later messages get SESSION_CLOSED [S12]", async () => {
    await unary(clients.lab, "open", open("t", "a12"), session("s12-f"));
    const done = await unary<LabReply>(clients.lab, "finish", act({ append: ["last"] }), session("s12-f"));
    assert.deepEqual(done.reply.log, ["last"]);
    const f = await fault(unary(clients.lab, "act", act(), session("s12-f")));
    assert.equal(f.code, Status.NOT_FOUND);
    assert.equal(f.info?.reason, "SESSION_CLOSED");
  });

  it("applies the messages of a session one at a time, each completely [S6]", async () => {
    await unary(clients.lab, "open", open("t", "a6"), session("s6"));
    const slow = unary<LabReply>(
      clients.lab,
      "act",
      act({ sleepMs: 300, append: ["a1", "a2"] }),
      session("s6"),
    );
    const fast = unary<LabReply>(clients.lab, "act", act({ append: ["b1", "b2"] }), session("s6"));
    const [s, f] = await Promise.all([slow, fast]);
    const final = s.reply.log.length > f.reply.log.length ? s.reply.log : f.reply.log;
    // Whichever came first, no entry of one message lands between those of the other.
    assert.ok(
      JSON.stringify(final) === JSON.stringify(["a1", "a2", "b1", "b2"]) ||
        JSON.stringify(final) === JSON.stringify(["b1", "b2", "a1", "a2"]),
      `interleaved log ${JSON.stringify(final)}`,
    );
  });

  it("applies pipelined messages of a session in arrival order, a slow first one included [S6]", async () => {
    // Sent back to back on one HTTP/2 connection without waiting for answers: the service
    // must apply them in the order they arrived, not in the order its threads happen to run.
    await unary(clients.lab, "open", open("t", "a6p"), session("s6-p"));
    const count = 48;
    const calls = Array.from({ length: count }, (_, i) =>
      unary<LabReply>(
        clients.lab,
        "act",
        act({ append: [String(i)], ...(i % 8 === 0 ? { sleepMs: 40 } : {}) }),
        session("s6-p"),
      ),
    );
    const answers = await Promise.all(calls);
    const expected = Array.from({ length: count }, (_, i) => String(i));
    const peek = await unary<LabReply>(clients.lab, "peek", act(), session("s6-p"));
    assert.deepEqual(peek.reply.log, expected);
    // Each answer carries the log right after its own message: a prefix of the final one.
    for (const [i, a] of answers.entries()) assert.deepEqual(a.reply.log, expected.slice(0, i + 1));
  });

  it("answers a number already applied with its recorded outcome and refuses a gap [S7]", async () => {
    await unary(clients.lab, "open", open("t", "a7"), session("s7"));
    const one = await unary<LabReply>(
      clients.lab,
      "act",
      act({ append: ["1"] }),
      session("s7", { "sb-seq": "1" }),
    );
    assert.deepEqual(one.reply.log, ["1"]);
    assert.equal(one.reply.replayed, false);
    const dup = await unary<LabReply>(
      clients.lab,
      "act",
      act({ append: ["other"] }),
      session("s7", { "sb-seq": "1" }),
    );
    assert.deepEqual(dup.reply.log, ["1"]);
    assert.equal(dup.reply.replayed, true);
    const gap = await fault(
      unary(clients.lab, "act", act({ append: ["3"] }), session("s7", { "sb-seq": "3" })),
    );
    assert.equal(gap.code, Status.FAILED_PRECONDITION);
    assert.equal(gap.info?.reason, "OUT_OF_SEQUENCE");
    assert.equal(gap.info?.metadata.expected_seq, "2");
    const two = await unary<LabReply>(
      clients.lab,
      "act",
      act({ append: ["2"] }),
      session("s7", { "sb-seq": "2" }),
    );
    assert.deepEqual(two.reply.log, ["1", "2"]);
  });

  it("does not apply a redelivered sb-message-id again and says so with replayed [S10]", async () => {
    await unary(clients.lab, "open", open("t", "a10"), session("s10"));
    const meta = session("s10", { "sb-message-id": "m-10" });
    const first = await unary<LabReply>(clients.lab, "act", act({ append: ["once"], observe: true }), meta);
    const second = await unary<LabReply>(clients.lab, "act", act({ append: ["once"], observe: true }), meta);
    assert.deepEqual(second.reply.log, ["once"]);
    assert.equal(first.reply.replayed, false);
    assert.equal(second.reply.replayed, true);
    assert.equal(first.reply.observed?.deliveryCount, 1);
    assert.equal(second.reply.observed?.deliveryCount, 2);
  });

  it("fails the first N deliveries of a message id with UNAVAILABLE, applying nothing [S11]", async () => {
    await unary(clients.lab, "open", open("t", "a11"), session("s11"));
    const meta = session("s11", { "sb-message-id": "m-11" });
    const f = await fault(unary(clients.lab, "post", act({ append: ["p"], failFirstDeliveries: 1 }), meta));
    assert.equal(f.code, Status.UNAVAILABLE);
    const ok = await unary(clients.lab, "post", act({ append: ["p"], failFirstDeliveries: 1 }), meta);
    assert.deepEqual(ok.reply, PostAck.fromPartial({}));
    const peek = await unary<LabReply>(clients.lab, "peek", act(), session("s11"));
    assert.deepEqual(peek.reply.log, ["p"]);
  });

  it("abandons a sleep at the deadline: DEADLINE_EXCEEDED and nothing applied [S15]", async () => {
    await unary(clients.lab, "open", open("t", "a15d"), session("s15-d"));
    const f = await fault(
      unary(clients.lab, "act", act({ sleepMs: 3000, append: ["late"] }), session("s15-d"), 300),
    );
    assert.ok(endedAtDeadline(f.code), `ended with code ${f.code}`);
    // The session's next message waits for the abandoned one to let go of the session.
    const peek = await unary<LabReply>(clients.lab, "peek", act(), session("s15-d"));
    assert.deepEqual(peek.reply.log, []);
  });

  it("serves Ping on the sessionless PingLabService only; LabService has no Ping", async () => {
    const pong = await unary<LabReply>(clients.ping, "ping", act({ observe: true, note: "p" }));
    assert.equal(pong.reply.note, "p");
    assert.deepEqual(pong.reply.log, []);
    assert.equal(pong.reply.observed?.sessionId, "");
    assert.equal(pong.reply.observed?.operation, "sessionbridge.conformance.v1.PingLabService/Ping");
    const code = await new Promise<number>((resolve) => {
      clients.lab.makeUnaryRequest(
        "/sessionbridge.conformance.v1.LabService/Ping",
        (value: ActRequest) => Buffer.from(ActRequest.encode(value).finish()),
        (bytes: Buffer) => LabReply.decode(bytes),
        act(),
        new Metadata(),
        {},
        (error) => resolve(error?.code ?? Status.OK),
      );
    });
    assert.equal(code, Status.UNIMPLEMENTED);
  });

  it("reports the remaining deadline, or -1 without one [S15]", async () => {
    const withDeadline = await unary<LabReply>(clients.ping, "ping", act({ observe: true }), {}, 20_000);
    const remaining = withDeadline.reply.observed?.deadlineRemainingMs ?? -1;
    assert.ok(remaining > 0 && remaining <= 20_000, `remaining ${remaining}`);
    const without = await unary<LabReply>(clients.ping, "ping", act({ observe: true }));
    assert.equal(without.reply.observed?.deadlineRemainingMs, -1);
  });

  it("answers Instruction.fail with exactly its code, message, ErrorInfo reason and details [S14]", async () => {
    const detail = Any.fromPartial({
      typeUrl: "type.googleapis.com/test.Detail",
      value: Buffer.from([1, 2, 3]),
    });
    const message = "bad\tthing\r\nhappened: \u00e9\u{1F600}";
    const f = await fault(
      unary(
        clients.ping,
        "ping",
        act({ fail: { code: 9, message, reason: "LAB_REASON", details: [detail] } }),
      ),
    );
    assert.equal(f.code, 9);
    assert.equal(f.status?.message, message);
    assert.equal(f.info?.reason, "LAB_REASON");
    assert.equal(f.info?.domain, DOMAIN);
    assert.equal(f.status?.details.length, 2);
    assert.equal(f.status?.details[1]?.typeUrl, detail.typeUrl);
    assert.deepEqual(Buffer.from(f.status?.details[1]?.value ?? []), Buffer.from([1, 2, 3]));
  });

  it("observes session facts and custom metadata, and sends reply headers and trailers [S15]", async () => {
    await unary(clients.lab, "open", open("t", "a15m"), session("s15-m"));
    const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    const answer = await unary<LabReply>(
      clients.lab,
      "act",
      act({
        observe: true,
        payload: Buffer.from("\u00e9t\u00e9"),
        note: "n\u00f6te",
        replyHeaders: { "x-h": "hv" },
        replyTrailers: { "x-t": "tv" },
      }),
      session("s15-m", {
        "sb-seq": "1",
        "sb-message-id": "m-15",
        "sb-principal": "alice",
        traceparent,
        "x-custom": "v1",
        "x-blob-bin": Buffer.from([0, 255, 7]),
      }),
    );
    const o = answer.reply.observed;
    assert.equal(o?.sessionId, "s15-m");
    assert.equal(o?.seq, 1);
    assert.equal(o?.messageId, "m-15");
    assert.equal(o?.principal, "alice");
    assert.equal(o?.traceparent, traceparent);
    assert.equal(o?.operation, "sessionbridge.conformance.v1.LabService/Act");
    assert.equal(o?.transport, "grpc");
    assert.deepEqual(o?.metadata, {
      "x-custom": "v1",
      "x-blob-bin": Buffer.from([0, 255, 7]).toString("base64"),
    });
    assert.equal(answer.reply.note, "n\u00f6te");
    assert.equal(Buffer.from(answer.reply.payload).toString(), "\u00e9t\u00e9");
    assert.deepEqual(answer.headers.get("x-h"), ["hv"]);
    assert.deepEqual(answer.trailers.get("x-t"), ["tv"]);
  });

  it("refuses an append on Peek and Ping with INVALID_ARGUMENT", async () => {
    const f = await fault(unary(clients.ping, "ping", act({ append: ["no"] })));
    assert.equal(f.code, Status.INVALID_ARGUMENT);
  });

  it("streams Items within a session and ends with the requested fault", async () => {
    await unary(clients.lab, "open", open("t", "ai"), session("s-items"));
    const result = await stream(
      clients.lab,
      items({ count: 3, itemBytes: 5, fail: { code: 10, message: "enough", reason: "STOP", details: [] } }),
      session("s-items"),
    );
    assert.deepEqual(
      result.items.map((i) => [i.index, i.payload.length]),
      [
        [0, 5],
        [1, 5],
        [2, 5],
      ],
    );
    assert.equal(result.fault?.code, Status.ABORTED);
    assert.equal(result.fault?.info?.reason, "STOP");
  });

  it("serves SequentialLabService, and SingleLabService with one live session at most [S3, S6]", async () => {
    await unary(clients.sequential, "open", open("t", "q"), session("seq-1"));
    const r = await unary<LabReply>(clients.sequential, "finish", act({ append: ["q"] }), session("seq-1"));
    assert.deepEqual(r.reply.log, ["q"]);
    await unary(clients.single, "open", open("", ""), session("single-1"));
    const f = await fault(unary(clients.single, "open", open("", ""), session("single-2")));
    assert.equal(f.code, Status.ALREADY_EXISTS);
    await unary(clients.single, "finish", act(), session("single-1"));
    await unary(clients.single, "open", open("", ""), session("single-2"));
  });

  it("keeps answered effects, one-way ones included, across kill -9 and restart [S9, S10]", async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "sb-java-durable-"));
    let first: JavaLab | undefined = await startJavaLab({ stateDir: dir });
    let c = labClients(first.addresses.grpc);
    try {
      await unary(c.lab, "open", open("t", "d"), session("s9"));
      await unary(c.lab, "post", act({ append: ["one-way"] }), session("s9", { "sb-message-id": "p-1" }));
      const before = await unary<LabReply>(
        c.lab,
        "act",
        act({ append: ["two-way"], observe: true }),
        session("s9"),
      );
      c.close();
      await first.kill();
      first = undefined;
      const second = await startJavaLab({ stateDir: dir });
      c = labClients(second.addresses.grpc);
      try {
        const after = await unary<LabReply>(c.lab, "peek", act({ observe: true }), session("s9"));
        assert.deepEqual(after.reply.log, ["one-way", "two-way"]);
        assert.equal(after.reply.observed?.incarnation, (before.reply.observed?.incarnation ?? 0) + 1);
        const again = await unary(
          c.lab,
          "post",
          act({ append: ["one-way"] }),
          session("s9", { "sb-message-id": "p-1" }),
        );
        assert.deepEqual(again.reply, PostAck.fromPartial({}));
        const log = await unary<LabReply>(c.lab, "peek", act(), session("s9"));
        assert.deepEqual(log.reply.log, ["one-way", "two-way"]);
      } finally {
        c.close();
        await second.stop();
      }
    } finally {
      if (first !== undefined) await first.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("expires a session idle for idle_timeout_ms x time_scale by itself [S12]", async () => {
    // 600000 ms x 0.0005 = 300 ms of idleness.
    const fast = await startJavaLab({ timeScale: 0.0005 });
    const c = labClients(fast.addresses.grpc);
    try {
      await unary(c.lab, "open", open("t", "e"), session("s12-e"));
      await sleep(1500);
      const f = await fault(unary(c.lab, "act", act(), session("s12-e")));
      assert.equal(f.code, Status.NOT_FOUND);
      assert.equal(f.info?.reason, "SESSION_EXPIRED");
    } finally {
      c.close();
      await fast.stop();
    }
  });
});
