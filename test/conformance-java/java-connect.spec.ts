import assert from "node:assert/strict";
import http from "node:http";
import { decodeErrorInfo } from "../../bridge/errors/rich-status.js";
import {
  ActRequest,
  type Instruction,
  ItemsRequest,
  LabItem,
  LabReply,
  OpenRequest,
} from "../../sdk/gen/sessionbridge/conformance/v1/lab.js";
import { sleep } from "../support/wait.js";
import {
  buildConformance,
  type JavaLab,
  type LabClients,
  labClients,
  startJavaLab,
} from "./java-lab-process.js";
import { act, open, session, unary } from "./lab-call.js";

const PKG = "sessionbridge.conformance.v1";

/** The session facts as HTTP headers, the way the bridge sends them to a process. */
function sb(id: string, extra: Record<string, string> = {}): Record<string, string> {
  return { "sb-session-id": id, ...extra };
}

interface HttpAnswer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
}

interface ConnectError {
  readonly code: string;
  readonly message: string;
  readonly details?: { type: string; value: string }[];
}

/**
 * The Java reference service over HTTP with the Connect protocol, driven directly as the
 * runner and the bridge's HTTP outbound adapter do (docs/http.md "Outbound").
 */
describe("conformance: Java reference service (direct, HTTP/Connect)", function () {
  this.timeout(600_000);
  let lab: JavaLab;
  let clients: LabClients;
  let base: URL;
  const agent = new http.Agent({ keepAlive: true, maxSockets: 16 });

  before(async () => {
    buildConformance("conformance/reference/java/build.sh");
    lab = await startJavaLab({ transports: ["grpc", "http"] });
    clients = labClients(lab.addresses.grpc);
    base = new URL(lab.addresses.http);
  });

  after(async () => {
    agent.destroy();
    clients?.close();
    await lab?.stop();
  });

  this.timeout(30_000);

  function post(
    path: string,
    body: Uint8Array | string,
    headers: http.OutgoingHttpHeaders,
    options: { abortAfterMs?: number } = {},
  ): Promise<HttpAnswer> {
    return new Promise((resolve, reject) => {
      const req = http.request(
        {
          host: base.hostname,
          port: base.port,
          path,
          method: "POST",
          agent,
          headers: { "content-length": Buffer.byteLength(body), ...headers },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }),
          );
          res.on("error", reject);
        },
      );
      req.on("error", reject);
      if (options.abortAfterMs !== undefined)
        setTimeout(() => req.destroy(new Error("hung up")), options.abortAfterMs);
      req.end(body);
    });
  }

  function proto(method: string, request: Uint8Array, headers: http.OutgoingHttpHeaders = {}, options = {}) {
    return post(`/${PKG}.${method}`, request, { "content-type": "application/proto", ...headers }, options);
  }

  const actBytes = (instruction: Partial<Instruction>) =>
    ActRequest.encode(ActRequest.fromPartial({ instruction })).finish();

  function connectError(answer: HttpAnswer): ConnectError {
    assert.equal(answer.headers["content-type"], "application/json");
    return JSON.parse(answer.body.toString("utf8")) as ConnectError;
  }

  it("answers the harness protocol with an HTTP base URL beside gRPC; both reach the same sessions", async () => {
    assert.match(lab.addresses.http, /^http:\/\/127\.0\.0\.1:\d+$/);
    await unary(clients.lab, "open", open("t", "h0"), session("h-shared"));
    const answer = await proto("LabService/Act", actBytes({ append: ["over-http"] }), sb("h-shared"));
    assert.equal(answer.status, 200);
    assert.deepEqual(LabReply.decode(answer.body).log, ["over-http"]);
  });

  it("serves unary calls with application/proto: facts, metadata, reply headers and Trailer- headers [S15]", async () => {
    const opened = await proto(
      "LabService/Open",
      OpenRequest.encode(
        OpenRequest.fromPartial({ tenant: "t", account: "h1", instruction: { append: ["a"] } }),
      ).finish(),
      sb("h1"),
    );
    assert.equal(opened.status, 200);
    assert.equal(opened.headers["content-type"], "application/proto");
    const answer = await proto(
      "LabService/Act",
      actBytes({
        append: ["b"],
        observe: true,
        replyHeaders: { "x-h": "hv" },
        replyTrailers: { "x-t": "tv" },
      }),
      sb("h1", {
        "sb-seq": "1",
        "sb-message-id": "hm-1",
        "x-custom": "v1",
        // Base64 without padding, as HTTP clients may send it; observed as padded base64.
        "x-blob-bin": Buffer.from([0, 255, 7, 8]).toString("base64").replace(/=+$/, ""),
        "connect-timeout-ms": "20000",
      }),
    );
    assert.equal(answer.status, 200);
    const reply = LabReply.decode(answer.body);
    assert.deepEqual(reply.log, ["a", "b"]);
    assert.equal(reply.observed?.transport, "http");
    assert.equal(reply.observed?.operation, `${PKG}.LabService/Act`);
    assert.equal(reply.observed?.sessionId, "h1");
    assert.equal(reply.observed?.seq, 1);
    assert.equal(reply.observed?.messageId, "hm-1");
    assert.deepEqual(reply.observed?.metadata, {
      "x-custom": "v1",
      "x-blob-bin": Buffer.from([0, 255, 7, 8]).toString("base64"),
    });
    const remaining = reply.observed?.deadlineRemainingMs ?? -1;
    assert.ok(remaining > 0 && remaining <= 20_000, `remaining ${remaining}`);
    assert.equal(answer.headers["x-h"], "hv");
    assert.equal(answer.headers["trailer-x-t"], "tv");
  });

  it("serves unary calls with application/json (proto3 JSON both ways)", async () => {
    await unary(clients.lab, "open", open("t", "hj"), session("h-json"));
    const answer = await post(
      `/${PKG}.LabService/Act`,
      JSON.stringify({ instruction: { append: ["j"], note: "n\u00f6te" } }),
      { "content-type": "application/json", ...sb("h-json") },
    );
    assert.equal(answer.status, 200);
    assert.equal(answer.headers["content-type"], "application/json");
    assert.deepEqual(JSON.parse(answer.body.toString("utf8")), { log: ["j"], note: "n\u00f6te" });
  });

  it("answers faults as Connect error JSON with the HTTP status of the code and the ErrorInfo first [S14]", async () => {
    const message = "bad\tthing\r\nhappened: \u00e9\u{1F600}";
    const answer = await proto(
      "PingLabService/Ping",
      actBytes({
        fail: {
          code: 9,
          message,
          reason: "LAB_REASON",
          details: [{ typeUrl: "type.googleapis.com/test.Detail", value: Buffer.from([1, 2, 3]) }],
        },
      }),
    );
    assert.equal(answer.status, 400);
    const error = connectError(answer);
    assert.equal(error.code, "failed_precondition");
    assert.equal(error.message, message);
    assert.equal(error.details?.length, 2);
    assert.equal(error.details?.[0]?.type, "google.rpc.ErrorInfo");
    const info = decodeErrorInfo(Buffer.from(error.details?.[0]?.value ?? "", "base64"));
    assert.equal(info.reason, "LAB_REASON");
    assert.equal(info.domain, "sessionbridge.conformance");
    assert.equal(error.details?.[1]?.type, "test.Detail");
    assert.deepEqual(Buffer.from(error.details?.[1]?.value ?? "", "base64"), Buffer.from([1, 2, 3]));

    const unknown = await proto("LabService/Act", actBytes({}), sb("h-nobody"));
    assert.equal(unknown.status, 404);
    assert.equal(connectError(unknown).code, "not_found");
  });

  it("serves Ping on PingLabService; LabService/Ping is unimplemented (501)", async () => {
    const pong = await proto("PingLabService/Ping", actBytes({ note: "p", observe: true }));
    assert.equal(pong.status, 200);
    assert.equal(LabReply.decode(pong.body).observed?.operation, `${PKG}.PingLabService/Ping`);
    const none = await proto("LabService/Ping", actBytes({}));
    assert.equal(none.status, 501);
    assert.equal(connectError(none).code, "unimplemented");
  });

  it("abandons work past Connect-Timeout-Ms: deadline_exceeded (504), nothing applied [S15]", async () => {
    await unary(clients.lab, "open", open("t", "hd"), session("h-deadline"));
    const late = await proto("LabService/Act", actBytes({ sleepMs: 3000, append: ["late"] }), {
      ...sb("h-deadline"),
      "connect-timeout-ms": "300",
    });
    assert.equal(late.status, 504);
    assert.equal(connectError(late).code, "deadline_exceeded");
    const peek = await unary<LabReply>(clients.lab, "peek", act(), session("h-deadline"));
    assert.deepEqual(peek.reply.log, []);
    const bad = await proto("PingLabService/Ping", actBytes({}), { "connect-timeout-ms": "soon" });
    assert.equal(bad.status, 400);
    assert.equal(connectError(bad).code, "invalid_argument");
  });

  it("abandons a call whose client hangs up: nothing applied [S15]", async () => {
    await unary(clients.lab, "open", open("t", "hc"), session("h-cancel"));
    await assert.rejects(
      proto("LabService/Act", actBytes({ sleepMs: 1500, append: ["gone"] }), sb("h-cancel"), {
        abortAfterMs: 300,
      }),
    );
    // Past the end of the sleep: a service that missed the hang-up would have applied it.
    await sleep(2000);
    const peek = await unary<LabReply>(clients.lab, "peek", act(), session("h-cancel"));
    assert.deepEqual(peek.reply.log, []);
  });

  it("streams Items in the Connect envelope format, ending with the fault in the end-of-stream message", async () => {
    await unary(clients.lab, "open", open("t", "hs"), session("h-stream"));
    const request = ItemsRequest.encode(
      ItemsRequest.fromPartial({
        count: 3,
        itemBytes: 4,
        fail: { code: 10, message: "enough", reason: "STOP", details: [] },
      }),
    ).finish();
    const framed = Buffer.alloc(5 + request.length);
    framed.writeUInt32BE(request.length, 1);
    framed.set(request, 5);
    const answer = await post(`/${PKG}.LabService/Items`, framed, {
      "content-type": "application/connect+proto",
      ...sb("h-stream"),
    });
    assert.equal(answer.status, 200);
    assert.equal(answer.headers["content-type"], "application/connect+proto");
    const frames: { flags: number; data: Buffer }[] = [];
    for (let at = 0; at + 5 <= answer.body.length; ) {
      const length = answer.body.readUInt32BE(at + 1);
      frames.push({ flags: answer.body.readUInt8(at), data: answer.body.subarray(at + 5, at + 5 + length) });
      at += 5 + length;
    }
    assert.deepEqual(
      frames
        .slice(0, -1)
        .map((f) => [f.flags, LabItem.decode(f.data).index, LabItem.decode(f.data).payload.length]),
      [
        [0, 0, 4],
        [0, 1, 4],
        [0, 2, 4],
      ],
    );
    const end = frames.at(-1);
    assert.equal(end?.flags, 2);
    const { error } = JSON.parse(end?.data.toString("utf8") ?? "{}") as { error?: ConnectError };
    assert.equal(error?.code, "aborted");
    assert.equal(error?.message, "enough");
  });

  it("answers a message still waiting for its session's turn at its deadline, and never applies it [S6, S15]", async () => {
    // The slow message must hold the session's turn before the other one arrives. Nothing
    // tells when it does, so a loaded machine may deliver the second one first: it then runs
    // at once (its log says so) and the scenario runs again with a longer head start.
    for (let attempt = 1; ; attempt++) {
      const id = `h-queue-${attempt}`;
      await unary(clients.lab, "open", open("t", id), session(id));
      const slow = proto("LabService/Act", actBytes({ sleepMs: 1500, append: ["slow"] }), sb(id));
      await sleep(100 * attempt);
      const waiting = await proto("LabService/Act", actBytes({ append: ["waiting"] }), {
        ...sb(id),
        "connect-timeout-ms": "300",
      });
      assert.equal((await slow).status, 200);
      const peek = await unary<LabReply>(clients.lab, "peek", act(), session(id));
      if (attempt < 5 && waiting.status === 200 && peek.reply.log[0] === "waiting") continue;
      assert.equal(waiting.status, 504);
      assert.deepEqual(peek.reply.log, ["slow"]);
      return;
    }
  });
});
