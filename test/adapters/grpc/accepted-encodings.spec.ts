import { expect } from "chai";
import { acceptedEncodings } from "../../../adapters/grpc/grpc-compression.js";

// The parsed grpc-accept-encoding is reused while the same header repeats (the hot path):
// a different header in between must never be answered with the previous client's set, or
// a client that reads no compression could be sent gzip.
describe("acceptedEncodings", () => {
  it("answers each header with its own encodings, however the headers alternate", () => {
    const headers = [
      "identity,gzip",
      "identity",
      "gzip, deflate",
      undefined,
      "identity,gzip",
      ["deflate", "gzip"],
    ];
    const expected = [["gzip"], [], ["gzip", "deflate"], [], ["gzip"], ["deflate", "gzip"]];
    for (let round = 0; round < 2; round++) {
      headers.forEach((header, i) => {
        expect([...acceptedEncodings(header)], String(header)).to.deep.equal(expected[i]);
      });
    }
  });

  it("gives the same answer for a header seen twice in a row", () => {
    const first = acceptedEncodings("identity,deflate,gzip");
    const second = acceptedEncodings("identity,deflate,gzip");
    expect([...second])
      .to.deep.equal([...first])
      .and.to.deep.equal(["deflate", "gzip"]);
  });
});
