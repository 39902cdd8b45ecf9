import { expect } from "chai";
import { Envelope, EnvelopeKind } from "../../sdk/gen/sessionbridge/v1/envelope.js";
import { makeEnvelope } from "./envelope-codec.js";
import { writeEnvelope } from "./envelope-writer.js";

/** The hand-written journal encoder must produce exactly the generated encoder's bytes. */
describe("writeEnvelope", () => {
  const cases: [string, Envelope][] = [
    ["an empty envelope", Envelope.fromPartial({})],
    [
      "a request with every field",
      makeEnvelope({
        kind: EnvelopeKind.ENVELOPE_KIND_REQUEST,
        messageId: "m".repeat(22),
        sessionId: "s".repeat(22),
        operation: "/examples.orders.v1.Orders/AddItem",
        principal: "anonymous",
        timeMs: 1_795_480_747_539,
        payload: Buffer.alloc(70_000, 3),
        codec: "proto",
        seq: 300,
        correlation: { order_id: "A-1", tenant: "ünïcödé" },
        metadata: { "x-a": "b", "x-empty": "", "trace-bin": "AAEC" },
        deadlineMs: 1_795_480_757_539,
        traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        tracestate: "vendor=1",
        inReplyTo: "r".repeat(22),
        idempotencyKey: "key-1",
      }),
    ],
    [
      "a fault with details, metadata and a negative code",
      makeEnvelope({
        kind: EnvelopeKind.ENVELOPE_KIND_FAULT,
        messageId: "m",
        sessionId: "s",
        operation: "/a.B/C",
        principal: "p",
        timeMs: 0,
        fault: {
          code: -7,
          reason: "WHY",
          message: "because",
          details: [
            { typeUrl: "type.googleapis.com/google.rpc.ErrorInfo", value: Buffer.from([1, 2, 3]) },
            { typeUrl: "t/empty", value: Buffer.alloc(0) },
          ],
          metadata: { expected_seq: "2" },
        },
      }),
    ],
    [
      "large numbers",
      Envelope.fromPartial({ seq: 2 ** 40 + 7, kind: 6, time: { seconds: -5, nanos: 999_999_999 } }),
    ],
  ];

  for (const [name, envelope] of cases) {
    it(`matches Envelope.encode for ${name}`, () => {
      const expected = Buffer.from(Envelope.encode(envelope).finish());
      expect(Buffer.from(writeEnvelope(envelope)).equals(expected)).to.equal(true);
      expect(Envelope.decode(writeEnvelope(envelope))).to.deep.equal(Envelope.decode(expected));
    });
  }
});
