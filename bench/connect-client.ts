import http2 from "node:http2";
import { FRAME_HEADER_BYTES } from "./grpc-frames.js";
import { closeSessions, type H2Pool, headersByPath, openSessions } from "./h2-client.js";

/** How the Connect rows encode a unary call: application/json or application/proto. */
export type ConnectCodec = "json" | "proto";

const { HTTP2_HEADER_STATUS } = http2.constants;

/**
 * The load generator's pool for the HTTP rows: Connect unary calls (POST with
 * application/proto or application/json, Connect-Protocol-Version 1) over h2c with prior
 * knowledge, a few connections with many streams each, as the gRPC pool does, so the rows
 * differ only in protocol. It takes the same gRPC-framed EchoRequest the gRPC rows send:
 * the proto body is that frame without its 5-byte prefix, and the JSON body is written
 * from it. A call succeeds on HTTP 200 with a body of the expected size (the echo answers
 * what it was sent).
 */
export async function connectConnectPool(
  target: string,
  connections: number,
  codec: ConnectCodec,
): Promise<H2Pool> {
  const sessions = await openSessions(target, connections);
  const headersFor = headersByPath({
    "content-type": `application/${codec}`,
    "connect-protocol-version": "1",
  });
  // The rows send few distinct messages (a key per session, one payload): the JSON text of
  // each is built once, so the generator's cost per call stays that of the proto rows.
  const jsonBodies = new Map<string, { body: Buffer; replyBytes: number }>();
  const encode = (frame: Buffer, expectedBytes: number): { body: Buffer; replyBytes: number } => {
    const message = frame.subarray(FRAME_HEADER_BYTES);
    if (codec === "proto") return { body: message, replyBytes: expectedBytes - FRAME_HEADER_BYTES };
    const id = message.toString("latin1");
    let cached = jsonBodies.get(id);
    if (cached === undefined) {
      cached = jsonOf(message);
      if (jsonBodies.size < 100_000) jsonBodies.set(id, cached);
    }
    return cached;
  };

  return {
    connections,
    unary(connection, path, frame, expectedBytes, done, headers) {
      const session = sessions[connection % connections] as http2.ClientHttp2Session;
      const { body, replyBytes } = encode(frame, expectedBytes);
      let received = 0;
      let failure: string | undefined;
      const base = headersFor(path);
      const stream = session.request(headers === undefined ? base : { ...base, ...headers }, {
        endStream: false,
      });
      stream.on("response", (response) => {
        const code = response[HTTP2_HEADER_STATUS];
        if (Number(code) !== 200) failure = `HTTP ${String(code)}`;
      });
      stream.on("data", (chunk: Buffer) => {
        received += chunk.length;
      });
      stream.on("error", (error: Error) => {
        failure ??= error.message;
      });
      stream.on("close", () => {
        if (failure === undefined && received !== replyBytes)
          failure = `reply of ${received} bytes, expected ${replyBytes}`;
        done(failure);
      });
      stream.end(body);
    },
    close: () => closeSessions(sessions),
  };
}

/**
 * EchoRequest{key = 1, payload = 2} as proto3 JSON, and the size of the EchoReply JSON
 * that echoes it: {"payload":"<base64>"}, or {} for an empty payload.
 */
function jsonOf(message: Buffer): { body: Buffer; replyBytes: number } {
  let key = "";
  let payload = message.subarray(0, 0);
  let pos = 0;
  while (pos < message.length) {
    const tag = message[pos++] as number;
    let length = 0;
    let shift = 0;
    for (;;) {
      const byte = message[pos++] as number;
      length |= (byte & 0x7f) << shift;
      if (byte < 0x80) break;
      shift += 7;
    }
    const value = message.subarray(pos, pos + length);
    pos += length;
    if (tag === 0x0a) key = value.toString("utf8");
    else if (tag === 0x12) payload = value;
  }
  const request: Record<string, string> = { key };
  if (payload.length > 0) request.payload = payload.toString("base64");
  const reply = payload.length > 0 ? JSON.stringify({ payload: payload.toString("base64") }) : "{}";
  return { body: Buffer.from(JSON.stringify(request), "utf8"), replyBytes: Buffer.byteLength(reply) };
}
