import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { EnvelopeKind } from "../../sdk/gen/sessionbridge/v1/envelope.js";
import { failure, header, unaryCall } from "../support/grpc-call.js";
import { type LabHarness, reasonOf, STORE_KINDS, startLabHarness } from "../support/lab-harness.js";
import type { LabOp, LabResult } from "../support/lab-process.js";

type Any = Record<string, (...args: unknown[]) => unknown>;

function collect<T>(
  stream: grpc.ClientReadableStream<T>,
): Promise<{ messages: T[]; headers?: grpc.Metadata; trailers: grpc.Metadata }> {
  return new Promise((resolve, reject) => {
    const messages: T[] = [];
    let headers: grpc.Metadata | undefined;
    stream.on("metadata", (md: grpc.Metadata) => {
      headers = md;
    });
    stream.on("data", (m: T) => messages.push(m));
    stream.on("error", reject);
    stream.on("status", (status: grpc.StatusObject) => {
      if (status.code === 0)
        resolve({ messages, ...(headers ? { headers } : {}), trailers: status.metadata });
    });
  });
}

/** Unary and all three streaming kinds pass through a session (S6, S9), against every store. */
for (const store of STORE_KINDS) {
  describe(`streaming calls through sessions, ${store} store`, () => {
    let h: LabHarness;
    before(async () => {
      h = await startLabHarness(store);
    });
    after(async () => {
      await h.close();
    });

    it("server streaming: every response arrives in order, with session headers and trailers, and is journaled", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "st-a" });
      const stream = (h.clients.Counter as unknown as Any).Watch?.({
        key: "st-a",
        text: "w",
        count: 5,
      }) as grpc.ClientReadableStream<LabResult>;
      const out = await collect(stream);
      expect(out.messages.map((m) => m.text)).to.deep.equal(["w#1", "w#2", "w#3", "w#4", "w#5"]);
      expect(header(out.headers, "sb-session-id")).to.equal(start.response.session_id);
      expect(header(out.trailers, "x-lab-trailer")).to.equal("watched");
      const kinds: number[] = [];
      for await (const e of h.sessions.history({ sessionId: start.response.session_id }))
        kinds.push(e.envelope?.kind ?? 0);
      expect(kinds.filter((k) => k === EnvelopeKind.ENVELOPE_KIND_RESPONSE)).to.have.length(1 + 5);
      expect(kinds.at(-1)).to.equal(EnvelopeKind.ENVELOPE_KIND_ACK);
    });

    it("client streaming: the first message correlates; every message reaches the process", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "st-b" });
      const result = await new Promise<LabResult>((resolve, reject) => {
        const call = (h.clients.Counter as unknown as Any).Upload?.(
          (error: grpc.ServiceError | null, value: LabResult) => (error ? reject(error) : resolve(value)),
        ) as grpc.ClientWritableStream<LabOp>;
        for (const text of ["a", "b", "c"]) call.write({ key: "st-b", text });
        call.end();
      });
      expect(result.text).to.equal("a,b,c");
      expect(result.session_id).to.equal(start.response.session_id);
    });

    it("bidi streaming: messages flow both ways within the session", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "st-c" });
      const call = (h.clients.Counter as unknown as Any).Chat?.() as grpc.ClientDuplexStream<
        LabOp,
        LabResult
      >;
      const done = collect(call);
      for (const text of ["x", "y"]) call.write({ key: "st-c", text });
      call.end();
      const out = await done;
      expect(out.messages.map((m) => m.text)).to.deep.equal(["echo:x", "echo:y"]);
      expect(out.messages.every((m) => m.session_id === start.response.session_id)).to.equal(true);
    });

    it("a stream for values that match no session is NOT_FOUND/CORRELATION_ERROR", async () => {
      const stream = (h.clients.Counter as unknown as Any).Watch?.({
        key: "st-nobody",
        count: 1,
      }) as grpc.ClientReadableStream<LabResult>;
      const err = await failure(collect(stream));
      expect(err.code).to.equal(grpc.status.NOT_FOUND);
      expect(reasonOf(err)).to.equal("CORRELATION_ERROR");
    });

    it("sb-seq on a streaming call is rejected: numbering applies to single-message calls", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "st-d" });
      const md = new grpc.Metadata();
      md.set("sb-seq", "1");
      const stream = (h.clients.Counter as unknown as Any).Watch?.(
        { key: "st-d", count: 1 },
        md,
      ) as grpc.ClientReadableStream<LabResult>;
      const err = await failure(collect(stream));
      expect(err.code).to.equal(grpc.status.INVALID_ARGUMENT);
      expect(reasonOf(err)).to.equal("UNSUPPORTED_ON_STREAM");
    });

    it("a stream the caller cancels gives the session's turn back and is journaled as CANCELLED", async () => {
      const start = await unaryCall<LabResult>(h.clients.Counter, "Start", { key: "st-f" });
      const stream = (h.clients.Counter as unknown as Any).Watch?.({
        key: "st-f",
        count: 50,
        delay_ms: 50,
      }) as grpc.ClientReadableStream<LabResult>;
      await new Promise<void>((resolve) => stream.once("data", () => resolve()));
      stream.cancel();
      stream.on("error", () => {});
      // The next exclusive call gets its turn.
      const next = await unaryCall<LabResult>(h.clients.Counter, "Do", { key: "st-f", text: "next" });
      expect(next.response.session_id).to.equal(start.response.session_id);
      const faults: string[] = [];
      for await (const e of h.sessions.history({ sessionId: start.response.session_id })) {
        if (e.envelope?.kind === EnvelopeKind.ENVELOPE_KIND_FAULT)
          faults.push(e.envelope.fault?.reason ?? "");
      }
      expect(faults).to.include("CANCELLED");
    });

    it("an exclusive stream holds the session's turn until it ends", async () => {
      await unaryCall(h.clients.Counter, "Start", { key: "st-e" });
      const stream = (h.clients.Counter as unknown as Any).Watch?.({
        key: "st-e",
        text: "s",
        count: 3,
        delay_ms: 80,
      }) as grpc.ClientReadableStream<LabResult>;
      const watching = collect(stream);
      await new Promise((r) => setTimeout(r, 30));
      const after = await unaryCall<LabResult>(h.clients.Counter, "Do", { key: "st-e", text: "after" });
      await watching;
      const watch = h.lab.deliveries.find((d) => d.key === "st-e" && d.method === "Watch");
      const doCall = h.lab.deliveries.find((d) => d.key === "st-e" && d.text === "after");
      expect((doCall?.atMs ?? 0) - (watch?.atMs ?? 0)).to.be.greaterThanOrEqual(3 * 80 - 20);
      expect(after.response.log).to.deep.equal(["Start", "Watch:s", "Do:after"]);
    });
  });
}
