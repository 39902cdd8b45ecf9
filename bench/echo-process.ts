/**
 * The echo process: a plain grpc-js server implementing bench.v1.Echo from the .proto file
 * (proto-loader), as an ordinary service behind the bridge would be. Run as its own child
 * so its CPU is measured apart. Prints {"type":"ready","port":…} once listening and exits
 * when its stdin closes.
 */
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import * as protoLoader from "@grpc/proto-loader";
import { benchProtoDir, repoRoot } from "./bench-paths.js";

interface EchoRequest {
  key: string;
  payload: Buffer;
}

type Handler = grpc.handleUnaryCall<EchoRequest, { payload: Buffer }>;

const echo: Handler = (call, callback) => callback(null, { payload: call.request.payload });

const definition = protoLoader.loadSync("bench/v1/bench.proto", {
  includeDirs: [benchProtoDir(), path.join(repoRoot(), "proto")],
  keepCase: true,
});
const pkg = grpc.loadPackageDefinition(definition) as unknown as {
  bench: { v1: { Echo: grpc.ServiceClientConstructor; Plain: grpc.ServiceClientConstructor } };
};

const server = new grpc.Server();
server.addService(pkg.bench.v1.Echo.service, { Open: echo, Call: echo, Read: echo });
server.addService(pkg.bench.v1.Plain.service, { Call: echo });
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error !== null) {
    process.stderr.write(`${error.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`${JSON.stringify({ type: "ready", port, pid: process.pid })}\n`);
});

process.stdin.resume();
process.stdin.on("end", () => server.tryShutdown(() => process.exit(0)));
