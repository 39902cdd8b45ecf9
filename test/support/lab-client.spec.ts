import type http2 from "node:http2";
import { expect } from "chai";
import { Code } from "../../bridge/errors/code.js";
import { expectFault, type LabClient } from "./lab-client.js";
import { CLIENT_KINDS, openLabClient } from "./lab-harness.js";
import { type RawH2Server, startRawH2Server } from "./passthrough-server.js";

/**
 * What each lab client puts on the wire, seen by a plain HTTP/2 server: the rule suites
 * mean something for a client library only if its calls carry the library's own framing,
 * deadline encoding (S15) and metadata.
 */
describe("lab clients on the wire", () => {
  let server: RawH2Server;
  const seen: http2.IncomingHttpHeaders[] = [];

  before(async () => {
    server = await startRawH2Server((stream, headers) => {
      seen.push(headers);
      stream.respond(
        {
          ":status": 200,
          "content-type": "application/grpc",
          "grpc-status": "12",
          "grpc-message": "wire check",
        },
        { endStream: true },
      );
    });
  });

  after(async () => {
    await server.close();
  });

  /** The request headers of one failed call through `client`. */
  async function headersOf(client: LabClient, timeoutMs?: number): Promise<http2.IncomingHttpHeaders> {
    const before = seen.length;
    const fault = await expectFault(
      client.unary(
        "Counter",
        "Do",
        { key: "wire" },
        {
          metadata: { "x-tenant": "acme", "x-blob-bin": Buffer.from([0, 255]).toString("base64") },
          ...(timeoutMs === undefined ? {} : { timeoutMs }),
        },
      ),
    );
    expect(fault.code).to.equal(Code.UNIMPLEMENTED);
    expect(fault.message).to.equal("wire check");
    const headers = seen[before];
    if (headers === undefined) throw new Error("the server saw no call");
    return headers;
  }

  for (const kind of CLIENT_KINDS.filter((k) => k !== "connect")) {
    it(`${kind}: a gRPC call to the method's path with the caller's metadata`, async () => {
      const client = openLabClient(kind, `127.0.0.1:${server.port}`);
      try {
        const headers = await headersOf(client);
        expect(headers[":path"]).to.equal("/test.lab.v1.Counter/Do");
        expect(headers["content-type"]).to.match(/^application\/grpc/);
        expect(headers["x-tenant"]).to.equal("acme");
        // Binary metadata travels base64-encoded, with or without padding.
        expect(Buffer.from(String(headers["x-blob-bin"]), "base64")).to.deep.equal(Buffer.from([0, 255]));
        expect(headers["grpc-timeout"]).to.equal(undefined);
      } finally {
        await client.close();
      }
    });
  }

  it("grpc-js sends its deadline in milliseconds", async () => {
    const client = openLabClient("grpc-js", `127.0.0.1:${server.port}`);
    try {
      expect((await headersOf(client, 5000))["grpc-timeout"]).to.match(/^\d+m$/);
    } finally {
      await client.close();
    }
  });

  it("grpc-go sends its deadline in microseconds, or nanoseconds under 100 ms", async () => {
    const client = openLabClient("grpc-go", `127.0.0.1:${server.port}`);
    try {
      expect((await headersOf(client, 5000))["grpc-timeout"]).to.match(/^\d+u$/);
      expect((await headersOf(client, 90))["grpc-timeout"]).to.match(/^\d+n$/);
    } finally {
      await client.close();
    }
  });
});
