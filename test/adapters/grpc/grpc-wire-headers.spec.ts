import type { OutgoingHttpHeaders } from "node:http2";
import { expect } from "chai";
import {
  decodeGrpcMessage,
  encodeGrpcMessage,
  grpcTimeout,
  metadataOf,
  putMetadata,
} from "../../../adapters/grpc/grpc-wire-headers.js";
import { BridgeError } from "../../../bridge/errors/bridge-error.js";
import { Code } from "../../../bridge/errors/code.js";
import { codeFromHttpStatus } from "../../../bridge/errors/http-status.js";

describe("gRPC-over-HTTP/2 header fields", () => {
  it("puts metadata on request headers: delivery headers win, binary values unpadded, bad fields refused", () => {
    const headers: OutgoingHttpHeaders = {};
    putMetadata(
      headers,
      {
        "x-a": ["1", "2"],
        "x-b-bin": ["AQID", "BA=="],
        "sb-message-id": ["forged"],
        te: ["gzip"],
        constructor: ["c"],
      },
      { "sb-message-id": "m-1" },
    );
    expect(headers).to.deep.equal({
      "x-a": ["1", "2"],
      "x-b-bin": ["AQID", "BA"],
      constructor: "c",
      "sb-message-id": "m-1",
    });
    expect(() => putMetadata({}, { "Bad Key": ["x"] }, {})).to.throw(
      BridgeError,
      /not a valid gRPC header name/,
    );
    expect(() => putMetadata({}, { "x-a": ["line\nbreak"] }, {})).to.throw(
      BridgeError,
      /not printable ASCII/,
    );
  });

  it("writes grpc-timeout in at most 8 digits, rounding up to a coarser unit", () => {
    expect(grpcTimeout(1234.2)).to.equal("1235m");
    expect(grpcTimeout(-5)).to.equal("0m");
    expect(grpcTimeout(99_999_999)).to.equal("99999999m");
    expect(grpcTimeout(100_000_000)).to.equal("100000S");
    expect(grpcTimeout(200_000_000_000)).to.equal("3333334M");
    expect(grpcTimeout(Number.MAX_SAFE_INTEGER)).to.match(/^\d{1,8}H$/);
  });

  it("percent-encodes a grpc-message's leading and trailing spaces, which an HTTP field value cannot carry", () => {
    expect(encodeGrpcMessage("not found ")).to.equal("not found%20");
    expect(encodeGrpcMessage(" a b ")).to.equal("%20a b%20");
    expect(encodeGrpcMessage(" ")).to.equal("%20");
    expect(encodeGrpcMessage("a b")).to.equal("a b");
    for (const text of ["not found ", " both ", "  ", " 你好 "]) {
      expect(decodeGrpcMessage(encodeGrpcMessage(text))).to.equal(text);
    }
  });

  it("percent-decodes grpc-message as UTF-8 and keeps malformed escapes", () => {
    expect(decodeGrpcMessage("plain")).to.equal("plain");
    expect(decodeGrpcMessage("50%25 off %E4%BD%A0%E5%A5%BD")).to.equal("50% off 你好");
    expect(decodeGrpcMessage("100% sure %zz")).to.equal("100% sure %zz");
  });

  it("reads headers as metadata: pseudo-headers dropped, binary values split and padded", () => {
    const metadata = metadataOf(
      { ":status": "200", "x-text": "a, b", "x-data-bin": "AQID, BA", "grpc-status": "0" },
      new Set(["grpc-status"]),
    );
    expect(metadata).to.deep.equal({ "x-text": ["a, b"], "x-data-bin": ["AQID", "BA=="] });
  });

  it("maps HTTP statuses by gRPC's table", () => {
    expect([400, 401, 403, 404, 429, 502, 503, 504, 500].map(codeFromHttpStatus)).to.deep.equal([
      Code.INTERNAL,
      Code.UNAUTHENTICATED,
      Code.PERMISSION_DENIED,
      Code.UNIMPLEMENTED,
      Code.UNAVAILABLE,
      Code.UNAVAILABLE,
      Code.UNAVAILABLE,
      Code.UNAVAILABLE,
      Code.UNKNOWN,
    ]);
  });
});
