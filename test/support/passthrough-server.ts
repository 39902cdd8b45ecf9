import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import * as grpc from "@grpc/grpc-js";

const identity = (bytes: Buffer): Buffer => bytes;

export type PassthroughMethod =
  | { readonly kind: "unary"; readonly handler: grpc.handleUnaryCall<Buffer, Buffer> }
  | { readonly kind: "serverStream"; readonly handler: grpc.handleServerStreamingCall<Buffer, Buffer> }
  | { readonly kind: "clientStream"; readonly handler: grpc.handleClientStreamingCall<Buffer, Buffer> }
  | { readonly kind: "bidi"; readonly handler: grpc.handleBidiStreamingCall<Buffer, Buffer> };

/** A real grpc-js server whose methods see and send raw bytes (no protobuf in between). */
export interface PassthroughServer {
  readonly server: grpc.Server;
  readonly port: number;
  close(): Promise<void>;
}

export async function startPassthroughServer(
  methods: Readonly<Record<string, PassthroughMethod>>,
  options: grpc.ServerOptions = {},
  port = 0,
): Promise<PassthroughServer> {
  const server = new grpc.Server(options);
  for (const [path, method] of Object.entries(methods)) {
    server.register<Buffer, Buffer>(path, method.handler, identity, identity, method.kind);
  }
  const bound = await new Promise<number>((resolve, reject) =>
    server.bindAsync(`127.0.0.1:${port}`, grpc.ServerCredentials.createInsecure(), (error, p) =>
      error ? reject(error) : resolve(p),
    ),
  );
  return {
    server,
    port: bound,
    close: async () => {
      server.forceShutdown();
    },
  };
}

/** A plain node:http2 server, for responses grpc-js would never send. */
export interface RawH2Server {
  readonly port: number;
  close(): Promise<void>;
}

export async function startRawH2Server(
  onStream: (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders) => void,
): Promise<RawH2Server> {
  const server = http2.createServer();
  const sessions = new Set<http2.ServerHttp2Session>();
  server.on("session", (session) => {
    sessions.add(session);
    session.on("close", () => sessions.delete(session));
  });
  server.on("stream", onStream);
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        for (const session of sessions) session.destroy();
        server.close(() => resolve());
      }),
  };
}

/** One gRPC length-prefixed message. */
export function grpcFrame(message: Uint8Array, compressed = false): Buffer {
  const frame = Buffer.alloc(5 + message.length);
  frame[0] = compressed ? 1 : 0;
  frame.writeUInt32BE(message.length, 1);
  frame.set(message, 5);
  return frame;
}
