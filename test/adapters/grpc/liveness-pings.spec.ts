import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { expect } from "chai";
import { createGrpcTransport } from "../../../adapters/grpc/h2-outbound.js";
import { BridgeError } from "../../../bridge/errors/bridge-error.js";
import { Code } from "../../../bridge/errors/code.js";
import { echoUnaryDelivery } from "../../support/echo-delivery.js";

const CALLS = 20;

describe("gRPC outbound: PINGs that check a connection", () => {
  let server: http2.Http2Server;
  let pings: number;

  afterEach(async () => {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it("sends one PING for many calls whose streams end without a status at once", async () => {
    // A process that answers every stream with headers and then ends it with RST_STREAM
    // NO_ERROR and no grpc-status, all at the same moment: each call asks whether the
    // connection is still there. grpc-go servers close a connection with GOAWAY
    // ENHANCE_YOUR_CALM after three PINGs that come with nothing sent in between.
    pings = 0;
    const streams: http2.ServerHttp2Stream[] = [];
    server = http2.createServer();
    server.on("session", (session) => {
      session.on("ping", () => pings++);
    });
    server.on("stream", (stream) => {
      stream.respond({ ":status": 200, "content-type": "application/grpc" });
      stream.on("data", () => {});
      streams.push(stream);
      if (streams.length === CALLS) {
        for (const s of streams) s.close(http2.constants.NGHTTP2_NO_ERROR);
      }
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const { port } = server.address() as AddressInfo;
    const client = createGrpcTransport().connect({
      name: "echo",
      location: new URL(`grpc://127.0.0.1:${port}`),
      envelope: false,
    });
    try {
      const outcomes = await Promise.allSettled(
        Array.from({ length: CALLS }, (_, i) => client.unary(echoUnaryDelivery(`m${i}`, Buffer.from([i])))),
      );
      expect(pings, "PINGs the process received").to.be.within(1, 2);
      for (const outcome of outcomes) {
        expect(outcome.status).to.equal("rejected");
        const error = (outcome as PromiseRejectedResult).reason;
        expect(error).to.be.instanceOf(BridgeError);
        // The connection answered: the process, not the connection, ended the call.
        expect((error as BridgeError).code).to.equal(Code.INTERNAL);
      }
    } finally {
      await client.close();
    }
  });
});
