import type http2 from "node:http2";
import { expect } from "chai";
import { MAX_HEADER_FIELDS, MAX_HEADER_LIST_BYTES } from "../../../adapters/grpc/h2-server.js";
import { Code } from "../../../bridge/errors/code.js";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";
import { grpcFrame } from "../../support/passthrough-server.js";
import { connectRaw, encodeOp, rawCall } from "./raw-h2-client.js";

/** A uint64 as a protobuf varint. */
function varint(value: bigint): Buffer {
  const bytes: number[] = [];
  let rest = value;
  while (rest >= 0x80n) {
    bytes.push(Number(rest & 0x7fn) | 0x80);
    rest >>= 7n;
  }
  bytes.push(Number(rest));
  return Buffer.from(bytes);
}

/** A protobuf string field. */
function text(field: number, value: string): Buffer {
  const bytes = Buffer.from(value);
  return Buffer.concat([Buffer.from([(field << 3) | 2, bytes.length]), bytes]);
}

/**
 * Bad input gets the code that says whose mistake it is: a content type the bridge does
 * not read is HTTP 415, headers over the documented limits are RESOURCE_EXHAUSTED with a
 * message, and SessionService requests it cannot decode are INVALID_ARGUMENT (S4).
 */
describe("bad input to the gRPC listener", () => {
  let harness: LabHarness;
  let session: http2.ClientHttp2Session;
  let n = 0;

  before(async () => {
    harness = await startLabHarness("memory");
    session = await connectRaw(harness.address);
  });
  after(async () => {
    session.close();
    await harness.close();
  });

  function start(headers: http2.OutgoingHttpHeaders) {
    n += 1;
    return rawCall(session, {
      path: "/test.lab.v1.Counter/Start",
      headers,
      body: [grpcFrame(encodeOp({ key: `bad-input-${n}` }))],
    });
  }

  describe("content types", () => {
    for (const type of ["application/grpc", "application/grpc+proto", "Application/GRPC; charset=utf-8"]) {
      it(`serves ${type}`, async () => {
        const outcome = await start({ "content-type": type });
        expect(outcome.headers[":status"]).to.equal(200);
        expect(outcome.grpcStatus, outcome.grpcMessage).to.equal(0);
      });
    }
    for (const type of [
      "application/grpc+cbor",
      "application/grpcx",
      "application/grpc-web",
      "text/plain",
      "",
    ]) {
      it(`refuses ${JSON.stringify(type)} with HTTP 415`, async () => {
        const outcome = await start({ "content-type": type });
        expect(outcome.headers[":status"]).to.equal(415);
        expect(outcome.grpcStatus).to.equal(undefined);
      });
    }
  });

  describe("header limits", () => {
    function fields(count: number): http2.OutgoingHttpHeaders {
      const headers: http2.OutgoingHttpHeaders = {};
      for (let i = 0; i < count; i++) headers[`x-field-${i}`] = "v";
      return headers;
    }

    it(`serves a request with ${MAX_HEADER_FIELDS} header fields in all`, async () => {
      // :method, :path, :scheme, :authority, content-type, te: 6 of them are the request's own.
      const outcome = await start(fields(MAX_HEADER_FIELDS - 6));
      expect(outcome.grpcStatus, outcome.grpcMessage).to.equal(0);
    });

    it("answers one field over the count with RESOURCE_EXHAUSTED, not a reset", async () => {
      const outcome = await start(fields(MAX_HEADER_FIELDS - 5));
      expect(outcome.grpcStatus).to.equal(Code.RESOURCE_EXHAUSTED);
      expect(outcome.grpcMessage).to.match(/header fields, over the limit of 100/);
    });

    it("answers headers over the size limit with RESOURCE_EXHAUSTED, not a reset", async () => {
      const outcome = await start({ "x-big": "a".repeat(MAX_HEADER_LIST_BYTES) });
      expect(outcome.grpcStatus).to.equal(Code.RESOURCE_EXHAUSTED);
      expect(outcome.grpcMessage).to.match(/over the limit of 16384/);
    });

    it("past Node's own limit (4 × ours) the stream is reset, and the connection still serves", async () => {
      const outcome = await start(fields(4 * MAX_HEADER_FIELDS + 10));
      expect(outcome.grpcStatus).to.equal(undefined);
      expect(outcome.rstCode).to.not.equal(0);
      const next = await start({});
      expect(next.grpcStatus, next.grpcMessage).to.equal(0);
    });

    it("serves headers just under the size limit", async () => {
      const outcome = await start({ "x-big": "a".repeat(MAX_HEADER_LIST_BYTES - 1024) });
      expect(outcome.grpcStatus, outcome.grpcMessage).to.equal(0);
    });
  });

  describe("SessionService requests", () => {
    async function sessionCall(method: string, body: Buffer) {
      return rawCall(session, {
        path: `/sessionbridge.v1.SessionService/${method}`,
        body: [grpcFrame(body)],
      });
    }

    it("answers undecodable bytes with INVALID_ARGUMENT", async () => {
      // Field 1 announces 100 bytes of string and the message ends after 2.
      for (const method of ["Get", "List", "Close", "History"]) {
        const outcome = await sessionCall(method, Buffer.from([0x0a, 100, 0x41, 0x42]));
        expect(outcome.grpcStatus, `${method}: ${outcome.grpcMessage}`).to.equal(Code.INVALID_ARGUMENT);
      }
    });

    it("answers a field of the wrong type with INVALID_ARGUMENT", async () => {
      // session_id (field 1, a string) sent as a varint: no session id at all.
      const outcome = await sessionCall("Get", Buffer.from([0x08, 0x05]));
      expect(outcome.grpcStatus, outcome.grpcMessage).to.equal(Code.INVALID_ARGUMENT);
    });

    it("answers a from_index beyond 2^53 with INVALID_ARGUMENT", async () => {
      const request = Buffer.concat([text(1, "some-session"), Buffer.from([0x18]), varint(2n ** 60n)]);
      const outcome = await sessionCall("History", request);
      expect(outcome.grpcStatus, outcome.grpcMessage).to.equal(Code.INVALID_ARGUMENT);
      expect(outcome.grpcMessage).to.match(/MAX_SAFE_INTEGER/);
    });
  });
});
