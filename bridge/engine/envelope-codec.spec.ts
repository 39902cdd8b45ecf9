import { expect } from "chai";
import { Envelope, EnvelopeKind } from "../../sdk/gen/sessionbridge/v1/envelope.js";
import { type EnvelopeFields, encodeFields, makeEnvelope } from "./envelope-codec.js";

/** encodeFields() must give the bytes of the envelope makeEnvelope() builds, call after call. */
describe("encodeFields", () => {
  const full: EnvelopeFields = {
    kind: EnvelopeKind.ENVELOPE_KIND_REQUEST,
    messageId: "m".repeat(22),
    operation: "/examples.orders.v1.Orders/AddItem",
    principal: "anonymous",
    timeMs: 1_795_480_747_539.25,
    payload: new Uint8Array([1, 2, 3, 4]),
    codec: "proto",
    seq: 300,
    correlation: { order_id: "A-1", tenant: "ünïcödé" },
    metadata: { "x-a": "b", "trace-bin": "AAEC" },
    deadlineMs: 1_795_480_757_539,
    traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
    tracestate: "vendor=1",
    inReplyTo: "r".repeat(22),
    idempotencyKey: "key-1",
  };
  const fault: EnvelopeFields = {
    kind: EnvelopeKind.ENVELOPE_KIND_FAULT,
    messageId: "f",
    operation: "/a.B/C",
    principal: "p",
    timeMs: -1500,
    inReplyTo: "m",
    fault: { code: 9, reason: "WHY", message: "because", details: [], metadata: { expected_seq: "2" } },
  };
  const minimal: EnvelopeFields = { kind: 0, messageId: "", operation: "", principal: "", timeMs: 0 };

  const expected = (fields: EnvelopeFields, sessionId: string): Buffer =>
    Buffer.from(Envelope.encode(makeEnvelope(fields, sessionId)).finish());

  it("matches makeEnvelope and Envelope.encode for each kind of entry", () => {
    for (const fields of [full, fault, minimal]) {
      expect(Buffer.from(encodeFields(fields, "s1"))).to.deep.equal(expected(fields, "s1"));
    }
  });

  it("carries nothing of one entry into the next", () => {
    // The encoder reuses one envelope: maps, payload, deadline and fault of a full entry
    // must not appear in the minimal one written after it.
    const order = [full, minimal, fault, full, fault, minimal];
    for (const fields of order) {
      expect(Buffer.from(encodeFields(fields, "s2"))).to.deep.equal(expected(fields, "s2"));
    }
  });

  it("returns bytes that later calls do not change", () => {
    const first = encodeFields(full, "s3");
    const copy = Buffer.from(first);
    encodeFields(fault, "s3");
    encodeFields(minimal, "s3");
    expect(Buffer.from(first)).to.deep.equal(copy);
  });
});
