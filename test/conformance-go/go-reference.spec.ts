import { execFile } from "node:child_process";
import { randomUUID } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { connect, type Msg, type NatsConnection, headers as natsHeaders } from "@nats-io/transport-node";
import { expect } from "chai";
import { loadBridgeSetup } from "../../bridge/config/check-config.js";
import { type BridgeRuntime, startBridgeRuntime } from "../../cli/bridge-runtime.js";
import { Any } from "../../sdk/gen/google/protobuf/any.js";
import { ItemsRequest } from "../../sdk/gen/sessionbridge/conformance/v1/lab.js";
import { type NatsServerFixture, startNatsServer } from "../support/nats-server.js";
import { repoRoot } from "../support/repo-root.js";
import { sleep, waitFor } from "../support/wait.js";
import { GO_REFERENCE, goFaulty, type HarnessService, startHarnessService } from "./harness-process.js";
import {
  faultOfStatus,
  grpcWire,
  httpWire,
  type LabWire,
  natsWire,
  PKG,
  WIRES,
  type Wire,
} from "./lab-wire.js";

const run = promisify(execFile);

// gRPC status codes used below (google.rpc.Code numbering).
const Code = {
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  UNIMPLEMENTED: 12,
} as const;

const DOMAIN = "sessionbridge.conformance";
const NATS_PREFIX = "golab";

/** A session id the way a runner in direct mode plays the bridge: fresh and unique. */
function sid(): string {
  return randomUUID();
}

function facts(session: string, extra: Record<string, string> = {}): { headers: Record<string, string> } {
  return { headers: { "sb-session-id": session, ...extra } };
}

function count(log: readonly string[], entry: string): number {
  return log.filter((e) => e === entry).length;
}

/** Every transport the service serves, as clients. */
async function openWires(
  service: HarnessService,
  nats: NatsConnection | undefined,
): Promise<Record<Wire, LabWire | undefined>> {
  const { grpc, http, nats: prefix } = service.addresses;
  return {
    grpc: grpc === "" ? undefined : grpcWire(grpc),
    http: http === "" ? undefined : httpWire(http),
    nats: prefix === "" || nats === undefined ? undefined : natsWire(nats, prefix),
  };
}

describe("Go reference lab service (conformance/reference/go)", function () {
  this.timeout(120_000);

  it("passes go vet and its Go unit tests, and so do the faulty variants", async function () {
    // Compiling the tests takes a while on a busy machine.
    this.timeout(600_000);
    for (const dir of ["conformance/reference/go", "conformance/faulty/go"]) {
      const options = {
        cwd: path.join(repoRoot(), dir),
        env: { ...process.env, GOFLAGS: "-mod=mod" },
        maxBuffer: 16 * 1024 * 1024,
      };
      await run("go", ["vet", "./..."], options);
      const { stdout } = await run("go", ["test", "-count=1", "./..."], options);
      expect(stdout).to.match(/^ok\s/m);
      expect(stdout).not.to.match(/^FAIL/m);
    }
  });

  describe("directly, over each transport", () => {
    let natsServer: NatsServerFixture;
    let nats: NatsConnection;
    let service: HarnessService;
    let wires: Record<Wire, LabWire | undefined>;
    let stateDir: string;

    before(async () => {
      natsServer = await startNatsServer();
      nats = await connect({ servers: natsServer.url });
      stateDir = mkdtempSync(path.join(os.tmpdir(), "sb-golab-"));
      service = await startHarnessService(GO_REFERENCE, {
        stateDir,
        timeScale: 1,
        natsUrl: natsServer.url,
        natsSubjectPrefix: NATS_PREFIX,
      });
      wires = await openWires(service, nats);
    });

    after(async () => {
      for (const w of Object.values(wires ?? {})) await w?.close();
      await service?.stop();
      await nats?.close();
      await natsServer?.stop();
      rmSync(stateDir, { recursive: true, force: true });
    });

    it("reports every transport it serves through the harness protocol", () => {
      expect(service.addresses.grpc).to.match(/^127\.0\.0\.1:\d+$/);
      expect(service.addresses.http).to.match(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(service.addresses.nats).to.equal(NATS_PREFIX);
    });

    for (const w of WIRES) {
      describe(`over ${w}`, () => {
        const wire = (): LabWire => {
          const client = wires[w];
          if (client === undefined) throw new Error(`${w} is not served`);
          return client;
        };

        it("keeps one log per session and joins a live id on Open (S1, S3)", async () => {
          const [a, b] = [sid(), sid()];
          await wire().call("LabService", "Open", { instruction: { append: ["a1"] } }, facts(a));
          const other = await wire().call(
            "LabService",
            "Open",
            { instruction: { append: ["b1"] } },
            facts(b),
          );
          expect(other.reply?.log).to.deep.equal(["b1"]);
          const acted = await wire().call("LabService", "Act", { instruction: { append: ["a2"] } }, facts(a));
          expect(acted.reply?.log).to.deep.equal(["a1", "a2"]);
          const joined = await wire().call("LabService", "Open", {}, facts(a));
          expect(joined.reply?.log).to.deep.equal(["a1", "a2"]);
        });

        it("refuses an unknown id, and an id ended by Finish (S4, S12)", async () => {
          const id = sid();
          const unknown = await wire().call(
            "LabService",
            "Act",
            { instruction: { append: ["x"] } },
            facts(id),
          );
          expect(unknown.fault).to.include({
            code: Code.NOT_FOUND,
            reason: "CORRELATION_ERROR",
            domain: DOMAIN,
          });
          const opened = await wire().call("LabService", "Open", {}, facts(id));
          expect(opened.reply?.log, "the refused message changed nothing").to.deep.equal([]);
          const finished = await wire().call(
            "LabService",
            "Finish",
            { instruction: { append: ["end"] } },
            facts(id),
          );
          expect(finished.reply?.log).to.deep.equal(["end"]);
          const after = await wire().call("LabService", "Act", {}, facts(id));
          expect(after.fault).to.include({ code: Code.NOT_FOUND, reason: "SESSION_CLOSED" });
        });

        it("answers a duplicate sb-seq from its record and refuses a gap (S7)", async () => {
          const id = sid();
          await wire().call("LabService", "Open", {}, facts(id));
          const one = await wire().call(
            "LabService",
            "Act",
            { instruction: { append: ["1"] } },
            facts(id, { "sb-seq": "1" }),
          );
          expect(one.reply).to.include({ replayed: false });
          const again = await wire().call(
            "LabService",
            "Act",
            { instruction: { append: ["1"] } },
            facts(id, { "sb-seq": "1" }),
          );
          expect(again.reply?.log).to.deep.equal(["1"]);
          expect(again.reply?.replayed).to.equal(true);
          const gap = await wire().call(
            "LabService",
            "Act",
            { instruction: { append: ["3"] } },
            facts(id, { "sb-seq": "3" }),
          );
          expect(gap.fault).to.include({ code: Code.FAILED_PRECONDITION, reason: "OUT_OF_SEQUENCE" });
          expect(gap.fault?.errorMetadata).to.deep.equal({ expected_seq: "2" });
        });

        it("answers a redelivered sb-message-id from its record, and counts deliveries (S10)", async () => {
          const id = sid();
          const messageId = sid();
          await wire().call("LabService", "Open", {}, facts(id));
          const request = { instruction: { append: ["once"], observe: true } };
          const first = await wire().call(
            "LabService",
            "Act",
            request,
            facts(id, { "sb-message-id": messageId }),
          );
          const second = await wire().call(
            "LabService",
            "Act",
            request,
            facts(id, { "sb-message-id": messageId }),
          );
          expect(first.reply?.replayed).to.equal(false);
          expect(second.reply?.replayed).to.equal(true);
          expect(second.reply?.log).to.deep.equal(["once"]);
          expect(first.reply?.observed?.deliveryCount).to.equal(1);
          expect(second.reply?.observed?.deliveryCount).to.equal(2);
        });

        it("applies one-way Posts, and refuses the first deliveries it is told to (S9, S11)", async () => {
          const id = sid();
          const messageId = sid();
          await wire().call("LabService", "Open", {}, facts(id));
          const request = { instruction: { append: ["posted"], failFirstDeliveries: 1 } };
          const refused = await wire().call(
            "LabService",
            "Post",
            request,
            facts(id, { "sb-message-id": messageId }),
          );
          expect(refused.fault).to.include({ code: 14, reason: "FAIL_FIRST_DELIVERIES" });
          const accepted = await wire().call(
            "LabService",
            "Post",
            request,
            facts(id, { "sb-message-id": messageId }),
          );
          expect(accepted.fault).to.equal(undefined);
          const peek = await wire().call("LabService", "Peek", {}, facts(id));
          expect(peek.reply?.log).to.deep.equal(["posted"]);
        });

        it("abandons a sleep at the deadline and applies nothing (S15)", async () => {
          const id = sid();
          await wire().call("LabService", "Open", {}, facts(id));
          const late = await wire().call(
            "LabService",
            "Act",
            { instruction: { append: ["late"], sleepMs: 600_000 } },
            { ...facts(id), timeoutMs: 300 },
          );
          // The client's own deadline gives DEADLINE_EXCEEDED; when grpc-go's server gives up
          // first it resets the stream (RST_STREAM CANCEL), which grpc-js reports as CANCELLED.
          // Either way the call is over at the deadline and nothing was applied.
          const overAtDeadline: readonly number[] =
            w === "grpc" ? [Code.DEADLINE_EXCEEDED, Code.CANCELLED] : [Code.DEADLINE_EXCEEDED];
          expect(overAtDeadline).to.include(late.fault?.code);
          const peek = await wire().call("LabService", "Peek", {}, facts(id));
          expect(peek.reply?.log).to.deep.equal([]);
        });

        if (w !== "nats") {
          it("abandons a cancelled call: nothing is applied and its turn passes on (S15)", async () => {
            // The retry with the same message id tells whether the cancelled call reached
            // the service (delivery 2) before it was cancelled; if the cancel won the race,
            // the scenario runs again with more time before it.
            for (let attempt = 1; attempt <= 5; attempt++) {
              const id = sid();
              const messageId = sid();
              await wire().call("LabService", "Open", {}, facts(id));
              const controller = new AbortController();
              const cancelled = wire()
                .call(
                  "LabService",
                  "Act",
                  { instruction: { append: ["cancelled"], sleepMs: 600_000 } },
                  { ...facts(id, { "sb-message-id": messageId }), signal: controller.signal },
                )
                .catch(() => undefined);
              await sleep(200 * attempt);
              controller.abort();
              await cancelled;
              // Were the sleep not abandoned, this would wait for it behind the same turn.
              const retried = await wire().call(
                "LabService",
                "Act",
                { instruction: { append: ["retried"], observe: true } },
                facts(id, { "sb-message-id": messageId }),
              );
              expect(retried.reply?.replayed).to.equal(false);
              expect(retried.reply?.log).to.deep.equal(["retried"]);
              if (retried.reply?.observed?.deliveryCount === 2) return;
            }
            throw new Error("the cancelled call never reached the service before its cancel");
          });
        }

        it("answers an instructed fault with exactly its code, message, reason and details (S14)", async () => {
          const detail = Any.fromPartial({
            typeUrl: "type.googleapis.com/google.protobuf.StringValue",
            value: Buffer.from([0x0a, 0x03, 0x61, 0x62, 0x63]),
          });
          const message = "tab\there\r\nnon-BMP 😀 ünïcode";
          const out = await wire().call("PingLabService", "Ping", {
            instruction: {
              fail: { code: Code.RESOURCE_EXHAUSTED, message, reason: "LAB_FULL", details: [detail] },
            },
          });
          expect(out.fault).to.include({ code: Code.RESOURCE_EXHAUSTED, reason: "LAB_FULL", domain: DOMAIN });
          // NATS's header form is one line; the exact message travels in sb-status-bin.
          expect(out.fault?.message).to.equal(message);
          expect(out.fault?.details).to.have.length(1);
          expect(out.fault?.details[0]?.typeUrl).to.equal(detail.typeUrl);
          expect(Buffer.from(out.fault?.details[0]?.value ?? []).equals(detail.value)).to.equal(true);
          if (w === "nats") {
            expect(out.headers["nats-service-error-code"]).to.equal("429");
            expect(out.headers["sb-reason"]).to.equal("LAB_FULL");
          }
        });

        it("observes the call's facts and custom metadata, and sends reply headers and trailers (S15)", async () => {
          const observedId = sid();
          const traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
          const out = await wire().call(
            "PingLabService",
            "Ping",
            {
              instruction: {
                observe: true,
                payload: Buffer.from([0, 1, 2, 255]),
                note: "ünïcode 😀",
                replyHeaders: { "x-reply-header": "h1" },
                replyTrailers: { "x-reply-trailer": "t1" },
              },
            },
            {
              headers: {
                "sb-message-id": observedId,
                "sb-principal": "alice",
                "sb-seq": "7",
                traceparent,
                "x-custom": "value",
                "x-blob-bin": Buffer.from([1, 2, 3, 4]).toString("base64"),
              },
              timeoutMs: 60_000,
            },
          );
          const observed = out.reply?.observed;
          expect(observed).to.include({
            messageId: observedId,
            principal: "alice",
            seq: 7,
            traceparent,
            operation: `${PKG}.PingLabService/Ping`,
            transport: w,
            deliveryCount: 1,
          });
          expect(observed?.incarnation).to.be.greaterThan(0);
          expect(observed?.deadlineRemainingMs).to.be.greaterThan(0).and.at.most(60_000);
          // What the client library adds on its own (fetch's accept-language, …) may be
          // there too; session facts and transport headers never are.
          expect(observed?.metadata).to.include({ "x-custom": "value", "x-blob-bin": "AQIDBA==" });
          for (const key of Object.keys(observed?.metadata ?? {})) {
            expect(key).not.to.match(
              /^(sb-|grpc-|connect-|nats-|:)|^(traceparent|content-type|user-agent|te)$/,
            );
          }
          expect([...(out.reply?.payload ?? [])]).to.deep.equal([0, 1, 2, 255]);
          expect(out.reply?.note).to.equal("ünïcode 😀");
          expect(out.headers["x-reply-header"]).to.equal("h1");
          // NATS has no trailers: they come back as headers (docs/nats.md).
          expect((w === "nats" ? out.headers : out.trailers)["x-reply-trailer"]).to.equal("t1");
          const noDeadline = await wire().call("PingLabService", "Ping", { instruction: { observe: true } });
          expect(noDeadline.reply?.observed?.deadlineRemainingMs).to.equal(-1);
        });

        it("serves Ping in the sessionless PingLabService only", async () => {
          const gone = await wire().call("LabService", "Ping", { instruction: { note: "x" } });
          expect(gone.fault?.code).to.equal(Code.UNIMPLEMENTED);
          const pinged = await wire().call("PingLabService", "Ping", { instruction: { note: "x" } });
          expect(pinged.reply?.note).to.equal("x");
        });

        it("keeps one live session of the single service (S3, S6)", async () => {
          const [first, second] = [sid(), sid()];
          expect((await wire().call("SingleLabService", "Open", {}, facts(first))).fault).to.equal(undefined);
          const refused = await wire().call("SingleLabService", "Open", {}, facts(second));
          expect(refused.fault).to.include({ code: Code.ALREADY_EXISTS, reason: "SESSION_ALREADY_EXISTS" });
          expect((await wire().call("SingleLabService", "Finish", {}, facts(first))).fault).to.equal(
            undefined,
          );
          expect((await wire().call("SingleLabService", "Open", {}, facts(second))).fault).to.equal(
            undefined,
          );
          await wire().call("SingleLabService", "Finish", {}, facts(second));
        });

        it("serves the sequential service (S6)", async () => {
          const id = sid();
          await wire().call("SequentialLabService", "Open", { instruction: { append: ["s"] } }, facts(id));
          const acted = await wire().call(
            "SequentialLabService",
            "Act",
            { instruction: { append: ["t"] } },
            facts(id),
          );
          expect(acted.reply?.log).to.deep.equal(["s", "t"]);
        });

        if (w !== "grpc") {
          it("takes and answers protobuf JSON", async () => {
            const id = sid();
            const out = await wire().call(
              "LabService",
              "Open",
              { instruction: { append: ["json"], note: "n" } },
              { ...facts(id), json: true },
            );
            expect(out.reply).to.include({ note: "n" });
            expect(out.reply?.log).to.deep.equal(["json"]);
          });
        }

        it("streams items within a session, then the requested fault", async () => {
          const id = sid();
          await wire().call("LabService", "Open", {}, facts(id));
          const out = await wire().items(
            {
              count: 3,
              itemBytes: 5,
              observe: true,
              fail: { code: Code.UNIMPLEMENTED, message: "no more", reason: "DONE" },
            },
            facts(id),
          );
          expect(out.items.map((i) => i.index)).to.deep.equal([0, 1, 2]);
          expect(out.items.map((i) => i.payload.length)).to.deep.equal([5, 5, 5]);
          expect(out.items[2]?.observed?.operation).to.equal(`${PKG}.LabService/Items`);
          expect(out.fault).to.include({ code: Code.UNIMPLEMENTED, reason: "DONE", message: "no more" });
          const unknown = await wire().items({ count: 1 }, facts(sid()));
          expect(unknown.fault).to.include({ code: Code.NOT_FOUND, reason: "CORRELATION_ERROR" });
        });

        if (w === "nats") {
          it("applies pipelined messages of one session in arrival order (S6)", async () => {
            const id = sid();
            await wire().call("LabService", "Open", {}, facts(id));
            // Sent back to back without waiting: the first sleeps, so a service that ran
            // them as they came would append out of order.
            const calls = Array.from({ length: 10 }, (_, i) =>
              wire().call(
                "LabService",
                "Act",
                { instruction: { append: [String(i)], sleepMs: i === 0 ? 200 : 0 } },
                facts(id),
              ),
            );
            await Promise.all(calls);
            const peek = await wire().call("LabService", "Peek", {}, facts(id));
            expect(peek.reply?.log).to.deep.equal(["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]);
          });

          it("streams in the framing of docs/nats.md: a head with the session, numbered msgs within the window, an end", async () => {
            const id = sid();
            await wire().call("LabService", "Open", {}, facts(id));
            // A window of one: the requester acks every item and fails a server that runs ahead.
            const out = await wire().items({ count: 6, itemBytes: 2 }, { ...facts(id), window: 1 });
            expect(out.fault).to.equal(undefined);
            expect(out.items.map((i) => i.index)).to.deep.equal([0, 1, 2, 3, 4, 5]);
            expect(out.headers["sb-stream"]).to.equal("head");
            expect(out.headers["sb-session-id"]).to.equal(id);
            expect(out.headers["sb-stream-control"]).to.be.a("string").and.not.equal("");
          });

          it("ends a stream cancelled on its control subject with CANCELLED and gives the session's turn back (S6, S15)", async () => {
            const id = sid();
            await wire().call("LabService", "Open", {}, facts(id));
            const inbox = `_INBOX.golab-cancel.${sid()}`;
            const replies = nats.subscribe(inbox);
            const request = ItemsRequest.encode(
              ItemsRequest.fromPartial({ count: 100_000, intervalMs: 10 }),
            ).finish();
            const h = natsHeaders();
            h.set("sb-session-id", id);
            nats.publish(`${NATS_PREFIX}.${PKG}.LabService.Items`, request, { reply: inbox, headers: h });
            const kinds: string[] = [];
            let control = "";
            let end: Msg | undefined;
            for await (const m of replies) {
              const kind = m.headers?.get("sb-stream") ?? "";
              kinds.push(kind);
              if (kind === "head") control = m.headers?.get("sb-stream-control") ?? "";
              if (kind === "msg" && kinds.filter((k) => k === "msg").length === 2) {
                const cancel = natsHeaders();
                cancel.set("sb-stream-cancel", "1");
                nats.publish(control, new Uint8Array(), { headers: cancel });
              }
              if (kind === "end") {
                end = m;
                break;
              }
            }
            replies.unsubscribe();
            expect(kinds[0]).to.equal("head");
            const status = end?.headers?.get("sb-status-bin") ?? "";
            expect(faultOfStatus(Buffer.from(status, "base64"))).to.include({ code: Code.CANCELLED });
            // The stream held the session's turn (S6); the cancel gave it back.
            const after = await wire().call(
              "LabService",
              "Act",
              { instruction: { append: ["after"] } },
              { ...facts(id), timeoutMs: 30_000 },
            );
            expect(after.reply?.log).to.deep.equal(["after"]);
          });
        }
      });
    }
  });

  describe("state across kill -9 and restart, and expiry", () => {
    const dirs: string[] = [];
    const started: HarnessService[] = [];
    const newDir = (): string => {
      const dir = mkdtempSync(path.join(os.tmpdir(), "sb-golab-"));
      dirs.push(dir);
      return dir;
    };
    const start = async (stateDir: string, timeScale = 1): Promise<HarnessService> => {
      const s = await startHarnessService(GO_REFERENCE, { stateDir, timeScale, transports: ["grpc"] });
      started.push(s);
      return s;
    };
    after(async () => {
      for (const s of started) await s.kill();
      for (const d of dirs) rmSync(d, { recursive: true, force: true });
    });

    it("keeps every answered effect, one-way ones included, across kill -9 (S9, S10)", async () => {
      const dir = newDir();
      const first = await start(dir);
      expect(first.addresses.http).to.equal("", "only the transports asked for are served");
      const a = grpcWire(first.addresses.grpc);
      const id = sid();
      const before = await a.call(
        "LabService",
        "Open",
        { instruction: { append: ["opened"], observe: true } },
        facts(id),
      );
      await a.call("LabService", "Act", { instruction: { append: ["seq-1"] } }, facts(id, { "sb-seq": "1" }));
      await a.call(
        "LabService",
        "Post",
        { instruction: { append: ["posted"] } },
        facts(id, { "sb-message-id": "p-1" }),
      );
      await a.close();
      await first.kill();

      const second = await start(dir);
      const b = grpcWire(second.addresses.grpc);
      const peek = await b.call("LabService", "Peek", { instruction: { observe: true } }, facts(id));
      expect(peek.reply?.log).to.deep.equal(["opened", "seq-1", "posted"]);
      expect(peek.reply?.observed?.incarnation).to.equal((before.reply?.observed?.incarnation ?? 0) + 1);
      const seq = await b.call(
        "LabService",
        "Act",
        { instruction: { append: ["again"] } },
        facts(id, { "sb-seq": "1" }),
      );
      expect(seq.reply?.replayed).to.equal(true);
      const post = await b.call(
        "LabService",
        "Post",
        { instruction: { append: ["posted"] } },
        facts(id, { "sb-message-id": "p-1" }),
      );
      expect(post.fault).to.equal(undefined);
      const after = await b.call("LabService", "Peek", {}, facts(id));
      expect(after.reply?.log, "the redelivered one-way message was applied once").to.deep.equal([
        "opened",
        "seq-1",
        "posted",
      ]);
      await b.close();
    });

    it("expires a session idle for its timeout times the time scale (S12)", async () => {
      // 600000 ms × 0.0002 = 120 ms of idleness.
      const s = await start(newDir(), 0.0002);
      const c = grpcWire(s.addresses.grpc);
      const id = sid();
      await c.call("LabService", "Open", {}, facts(id));
      await sleep(500);
      const late = await c.call("LabService", "Act", {}, facts(id));
      expect(late.fault).to.include({ code: Code.NOT_FOUND, reason: "SESSION_EXPIRED" });
      await c.close();
    });
  });

  describe("faulty services break exactly their rule; the reference breaks none", () => {
    // One check per rule a faulty service breaks: true when the service keeps the rule.
    // Each check appends a token of its own and counts it, so a service whose sessions
    // share one log (the S1 break) does not fail the other checks by accident.
    const checks: Record<string, (c: LabWire) => Promise<boolean>> = {
      async S1(c) {
        const [a, b, token] = [sid(), sid(), sid()];
        await c.call("LabService", "Open", { instruction: { append: [token] } }, facts(a));
        const other = await c.call("LabService", "Open", {}, facts(b));
        return other.reply !== undefined && !other.reply.log.includes(token);
      },
      async S7(c) {
        const [id, token] = [sid(), sid()];
        await c.call("LabService", "Open", {}, facts(id));
        await c.call("LabService", "Act", { instruction: { append: [token] } }, facts(id, { "sb-seq": "1" }));
        const dup = await c.call(
          "LabService",
          "Act",
          { instruction: { append: [token] } },
          facts(id, { "sb-seq": "1" }),
        );
        return dup.reply?.replayed === true && count(dup.reply.log, token) === 1;
      },
      async S10(c) {
        const [id, m, token] = [sid(), sid(), sid()];
        await c.call("LabService", "Open", {}, facts(id));
        await c.call(
          "LabService",
          "Post",
          { instruction: { append: [token] } },
          facts(id, { "sb-message-id": m }),
        );
        await c.call(
          "LabService",
          "Post",
          { instruction: { append: [token] } },
          facts(id, { "sb-message-id": m }),
        );
        const peek = await c.call("LabService", "Peek", {}, facts(id));
        return peek.reply !== undefined && count(peek.reply.log, token) === 1;
      },
      async S14(c) {
        const out = await c.call("PingLabService", "Ping", {
          instruction: { fail: { code: Code.FAILED_PRECONDITION, message: "m", reason: "R" } },
        });
        return out.fault?.code === Code.FAILED_PRECONDITION && out.fault.reason === "R";
      },
    };
    const services: { name: string; command: readonly string[]; breaks?: string }[] = [
      { name: "go-reference", command: GO_REFERENCE },
      { name: "go-faulty-shared-state", command: goFaulty("shared-state"), breaks: "S1" },
      { name: "go-faulty-duplicate-seq", command: goFaulty("duplicate-seq"), breaks: "S7" },
      { name: "go-faulty-ignore-message-id", command: goFaulty("ignore-message-id"), breaks: "S10" },
      { name: "go-faulty-unknown-codes", command: goFaulty("unknown-codes"), breaks: "S14" },
    ];
    for (const target of services) {
      it(`${target.name} ${target.breaks === undefined ? "keeps every rule checked" : `breaks ${target.breaks} and only it`}`, async () => {
        const dir = mkdtempSync(path.join(os.tmpdir(), "sb-golab-"));
        const s = await startHarnessService(target.command, { stateDir: dir, transports: ["grpc", "http"] });
        const wires = [grpcWire(s.addresses.grpc), httpWire(s.addresses.http)];
        try {
          for (const c of wires) {
            const broken: string[] = [];
            for (const [rule, check] of Object.entries(checks)) if (!(await check(c))) broken.push(rule);
            expect(broken, `rules broken over ${c.wire}`).to.deep.equal(
              target.breaks === undefined ? [] : [target.breaks],
            );
          }
        } finally {
          for (const c of wires) await c.close();
          await s.stop();
          rmSync(dir, { recursive: true, force: true });
        }
      });
    }
  });

  describe("behind a real bridge", () => {
    let natsServer: NatsServerFixture;
    let nats: NatsConnection;
    let service: HarnessService;
    let dir: string;

    before(async () => {
      natsServer = await startNatsServer();
      nats = await connect({ servers: natsServer.url });
      dir = mkdtempSync(path.join(os.tmpdir(), "sb-golab-bridge-"));
      service = await startHarnessService(GO_REFERENCE, {
        stateDir: path.join(dir, "state"),
        natsUrl: natsServer.url,
        natsSubjectPrefix: NATS_PREFIX,
      });
    });

    after(async () => {
      await service?.stop();
      await nats?.close();
      await natsServer?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    const services = ["LabService", "SequentialLabService", "SingleLabService", "PingLabService"].map(
      (s) => `${PKG}.${s}`,
    );

    function location(outbound: Wire, serviceName: string): string {
      if (outbound === "grpc") return `grpc://${service.addresses.grpc}`;
      if (outbound === "http") return service.addresses.http;
      return `nats://${service.addresses.nats}.${serviceName}`;
    }

    async function startBridge(outbound: Wire): Promise<BridgeRuntime> {
      const file = path.join(dir, `sessionbridge-${outbound}.yaml`);
      const processes = services.map((name, i) =>
        [
          `  - name: go-lab-${i}`,
          `    services: [${name}]`,
          `    location: ${JSON.stringify(location(outbound, name))}`,
        ].join("\n"),
      );
      writeFileSync(
        file,
        [
          "contracts:",
          `  importPaths: [${JSON.stringify(path.join(repoRoot(), "proto"))}]`,
          "  files: [sessionbridge/conformance/v1/lab.proto]",
          "processes:",
          ...processes,
          "listeners:",
          "  grpc: 127.0.0.1:0",
          `  nats: { url: ${JSON.stringify(natsServer.url)}, prefix: sb }`,
          "store: memory",
        ].join("\n"),
      );
      const setup = loadBridgeSetup({ file });
      return startBridgeRuntime({ config: setup.config, contracts: setup.contracts });
    }

    for (const outbound of WIRES) {
      it(`opens, acts, numbers, streams, posts and finishes a session with the service on ${outbound}`, async () => {
        const runtime = await startBridge(outbound);
        const client = grpcWire(runtime.grpc.address);
        try {
          const tenant = "t1";
          const account = sid();
          const opened = await client.call("LabService", "Open", {
            tenant,
            account,
            instruction: { append: ["opened"], observe: true },
          });
          expect(opened.fault).to.equal(undefined);
          const sessionId = opened.headers["sb-session-id"];
          expect(sessionId).to.be.a("string");
          expect(opened.reply?.observed).to.include({
            sessionId,
            transport: outbound,
            operation: `${PKG}.LabService/Open`,
          });
          // By correlation values (S2, S5), with custom metadata that reaches the service (S15).
          const acted = await client.call(
            "LabService",
            "Act",
            { tenant, account, instruction: { append: ["acted"], observe: true } },
            { headers: { "x-team": "go" } },
          );
          expect(acted.reply?.log).to.deep.equal(["opened", "acted"]);
          expect(acted.reply?.observed?.metadata).to.include({ "x-team": "go" });
          expect(acted.reply?.observed?.messageId).to.be.a("string").and.not.equal("");
          // A numbered message reaches the service with its number (S7).
          const numbered = await client.call(
            "LabService",
            "Act",
            { tenant, account, instruction: { append: ["numbered"], observe: true } },
            { headers: { "sb-seq": "1" } },
          );
          expect(numbered.reply?.observed?.seq).to.equal(1);
          if (outbound !== "nats") {
            // Server streaming crosses the bridge to gRPC and Connect processes.
            const streamed = await client.items({ tenant, account, count: 2, itemBytes: 3 });
            expect(streamed.fault).to.equal(undefined);
            expect(streamed.items.map((i) => i.index)).to.deep.equal([0, 1]);
          }
          const posted = await client.call("LabService", "Post", {
            tenant,
            account,
            instruction: { append: ["posted"] },
          });
          expect(posted.fault).to.equal(undefined);
          await waitFor(
            async () => {
              const peek = await client.call("LabService", "Peek", { tenant, account });
              return peek.reply?.log.includes("posted") === true;
            },
            20_000,
            "the one-way message to be delivered",
          );
          const fault = await client.call("LabService", "Act", {
            tenant,
            account,
            instruction: {
              fail: { code: Code.FAILED_PRECONDITION, message: "refused", reason: "LAB_REFUSED" },
            },
          });
          expect(fault.fault).to.include({
            code: Code.FAILED_PRECONDITION,
            reason: "LAB_REFUSED",
            message: "refused",
          });
          const finished = await client.call("LabService", "Finish", {
            tenant,
            account,
            instruction: { append: ["done"] },
          });
          expect(finished.reply?.log).to.deep.equal(["opened", "acted", "numbered", "posted", "done"]);
          const after = await client.call(
            "LabService",
            "Act",
            {},
            { headers: { "sb-session-id": sessionId ?? "" } },
          );
          expect(after.fault?.code).to.equal(Code.NOT_FOUND);
          // PingLabService is sessionless: passed through without a session.
          const pinged = await client.call("PingLabService", "Ping", {
            instruction: { note: "pong", observe: true },
          });
          expect(pinged.fault).to.equal(undefined);
          expect(pinged.reply?.observed).to.include({
            sessionId: "",
            transport: outbound,
            operation: `${PKG}.PingLabService/Ping`,
          });
          expect(pinged.headers["sb-session-id"]).to.equal(undefined);
          expect(pinged.trailers["sb-session-id"]).to.equal(undefined);
        } finally {
          await client.close();
          await runtime.stop(1000);
        }
      });
    }
  });
});
