import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { expect } from "chai";
import { Code } from "../../bridge/errors/code.js";
import { LabItem } from "../../sdk/gen/sessionbridge/conformance/v1/lab.js";
import { createGrpcJsTransport } from "../support/grpc-js-transport.js";
import type { LabTransport } from "../support/lab-transport.js";
import { type NatsServerFixture, startNatsServer } from "../support/nats-server.js";
import { LAB, labCall, labReply } from "./lab-calls.js";
import { type LabServiceProcess, readTarget, startLabService } from "./lab-service-process.js";
import { endStatus, kind, openStream } from "./nats-stream-frames.js";

const target = readTarget("python-reference");
const SUBJECT = `lab.${LAB}.Items`;

describe("Python reference lab service: server streams over NATS (docs/nats.md Streaming)", function () {
  this.timeout(120_000);
  let nats: NatsServerFixture;
  let service: LabServiceProcess;
  let dir: string;
  let connection: NatsConnection;
  let grpc: LabTransport;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "sb-py-stream-"));
    nats = await startNatsServer();
    service = await startLabService(target.command, {
      stateDir: path.join(dir, "state"),
      natsUrl: nats.url,
      natsSubjectPrefix: "lab",
    });
    connection = await connect({ servers: nats.url });
    grpc = createGrpcJsTransport(service.addresses.grpc);
  });

  after(async () => {
    await grpc?.close();
    await connection?.close();
    await service?.stop();
    await nats?.stop();
    if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
  });

  it("is declared: the target file says nats_streams", () => {
    expect(target.features).to.include("nats_streams");
  });

  it("sends head, numbered msgs in order and an end without a fault [S1, S6]", async () => {
    await labReply(grpc, "Open", {}, { session: "frames" });
    const stream = openStream(
      connection,
      SUBJECT,
      { count: 5, itemBytes: 3 },
      { "sb-session-id": "frames", "sb-message-id": "m-frames" },
    );
    try {
      await stream.frame(7);
      const [head, ...rest] = stream.frames;
      expect(kind(head)).to.equal("head");
      expect(head?.headers?.get("sb-stream-control")).to.have.length.greaterThan(0);
      expect(head?.headers?.get("sb-session-id")).to.equal("frames");
      expect(head?.headers?.get("sb-message-id")).to.equal("m-frames");
      const msgs = rest.slice(0, 5);
      expect(msgs.map(kind)).to.deep.equal(["msg", "msg", "msg", "msg", "msg"]);
      expect(msgs.map((m) => m.headers?.get("sb-stream-seq"))).to.deep.equal(["1", "2", "3", "4", "5"]);
      expect(msgs.map((m) => LabItem.decode(m.data).index)).to.deep.equal([0, 1, 2, 3, 4]);
      expect(msgs.map((m) => LabItem.decode(m.data).payload.length)).to.deep.equal([3, 3, 3, 3, 3]);
      expect(kind(rest[5])).to.equal("end");
      expect(endStatus(rest[5])).to.deep.equal([Code.OK, ""]);
      await sleep(200);
      expect(stream.frames).to.have.length(7);
    } finally {
      stream.close();
    }
  });

  it("ends a failing stream with its items, then the fault headers and sb-status-bin [S14]", async () => {
    await labReply(grpc, "Open", {}, { session: "fault" });
    const stream = openStream(
      connection,
      SUBJECT,
      { count: 2, fail: { code: Code.ABORTED, message: "stop", reason: "ENOUGH" } },
      { "sb-session-id": "fault" },
    );
    try {
      const end = await stream.frame(4);
      expect(stream.frames.map(kind)).to.deep.equal(["head", "msg", "msg", "end"]);
      expect(end.headers?.get("Nats-Service-Error-Code")).to.equal("409");
      expect(end.headers?.get("Nats-Service-Error")).to.equal("stop");
      expect(end.headers?.get("sb-reason")).to.equal("ENOUGH");
      expect(endStatus(end)).to.deep.equal([Code.ABORTED, "ENOUGH"]);
    } finally {
      stream.close();
    }
  });

  it("never has more than the window unacked: a reader that does not ack holds the stream [S6]", async () => {
    await labReply(grpc, "Open", {}, { session: "window" });
    const stream = openStream(
      connection,
      SUBJECT,
      { count: 6 },
      { "sb-session-id": "window", "sb-stream-window": "2" },
    );
    try {
      await stream.frame(3);
      // Nothing more comes until the reader acks; waiting longer can only let more arrive.
      await sleep(700);
      expect(stream.frames.map(kind)).to.deep.equal(["head", "msg", "msg"]);
      stream.ack(2);
      await stream.frame(5);
      await sleep(500);
      expect(stream.frames.map(kind)).to.deep.equal(["head", "msg", "msg", "msg", "msg"]);
      // A stale or excessive ack moves nothing past what was sent.
      stream.ack(1);
      stream.ack(4);
      const end = await stream.frame(8);
      expect(kind(end)).to.equal("end");
      expect(endStatus(end)).to.deep.equal([Code.OK, ""]);
      expect(stream.frames.slice(1, 7).map((m) => m.headers?.get("sb-stream-seq"))).to.deep.equal([
        "1",
        "2",
        "3",
        "4",
        "5",
        "6",
      ]);
    } finally {
      stream.close();
    }
  });

  for (const full of [false, true]) {
    it(`stops at a cancel ${full ? "while the window is full" : "between items"}: an end with CANCELLED, and the session serves on [S15, S6]`, async () => {
      const session = `cancel-${full}`;
      await labReply(grpc, "Open", {}, { session });
      const stream = openStream(
        connection,
        SUBJECT,
        { count: 10_000, intervalMs: full ? 0 : 50 },
        { "sb-session-id": session, "sb-stream-window": full ? "1" : "64" },
      );
      try {
        await stream.frame(2);
        stream.cancel();
        const bound = Date.now() + 30_000;
        while (kind(stream.frames.at(-1)) !== "end" && Date.now() < bound) await sleep(50);
        const end = stream.frames.at(-1);
        expect(kind(end)).to.equal("end");
        expect(endStatus(end)[0]).to.equal(Code.CANCELLED);
        expect(stream.frames.length).to.be.lessThan(10_000);
        // The stream gave the session's turn back: the next exclusive message runs.
        const acted = await labReply(grpc, "Act", { append: ["after"] }, { session, timeoutMs: 20_000 });
        expect(acted.log).to.deep.equal(["after"]);
      } finally {
        stream.close();
      }
    });
  }

  for (const full of [false, true]) {
    it(`ends with DEADLINE_EXCEEDED at sb-timeout-ms ${full ? "while the window is full" : "between items"} [S15]`, async () => {
      const session = `deadline-${full}`;
      await labReply(grpc, "Open", {}, { session });
      const stream = openStream(
        connection,
        SUBJECT,
        { count: 10_000, intervalMs: full ? 0 : 100 },
        { "sb-session-id": session, "sb-timeout-ms": "400", "sb-stream-window": full ? "1" : "64" },
      );
      try {
        const bound = Date.now() + 30_000;
        while (kind(stream.frames.at(-1)) !== "end" && Date.now() < bound) await sleep(50);
        const end = stream.frames.at(-1);
        expect(kind(end)).to.equal("end");
        expect(endStatus(end)[0]).to.equal(Code.DEADLINE_EXCEEDED);
        const acted = await labReply(grpc, "Act", { append: ["after"] }, { session, timeoutMs: 20_000 });
        expect(acted.log).to.deep.equal(["after"]);
      } finally {
        stream.close();
      }
    });
  }

  it("answers a request refused before it is accepted with an end alone, no head", async () => {
    const stream = openStream(
      connection,
      SUBJECT,
      { count: 1 },
      { "sb-session-id": "frames", "sb-stream-window": "0" },
    );
    try {
      const end = await stream.frame(1);
      await sleep(200);
      expect(stream.frames.map(kind)).to.deep.equal(["end"]);
      expect(endStatus(end)[0]).to.equal(Code.INVALID_ARGUMENT);
    } finally {
      stream.close();
    }
  });

  it("keeps a session's streams and messages in arrival order [S6]", async () => {
    await labReply(grpc, "Open", {}, { session: "order" });
    // The stream arrives first and holds the session's turn while the reader does not ack.
    const stream = openStream(
      connection,
      SUBJECT,
      { count: 3 },
      { "sb-session-id": "order", "sb-stream-window": "1" },
    );
    try {
      await stream.frame(2);
      let acted = false;
      const acting = labCall(grpc, "Act", { append: ["after-stream"] }, { session: "order" }).finally(() => {
        acted = true;
      });
      await sleep(500);
      // The Act came later: it waits for the stream's turn (it cannot have run yet).
      expect(acted).to.equal(false);
      expect(stream.frames.map(kind)).to.deep.equal(["head", "msg"]);
      stream.ack(1);
      await stream.frame(3);
      stream.ack(2);
      await stream.frame(4);
      stream.ack(3);
      expect(kind(await stream.frame(5))).to.equal("end");
      expect((await acting).reply?.log).to.deep.equal(["after-stream"]);
    } finally {
      stream.close();
    }
  });
});
