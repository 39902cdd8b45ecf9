import * as grpc from "@grpc/grpc-js";
import { loadLabPackage } from "../../support/lab-process.js";

/**
 * A process of the lab Counter contract, run as its own OS process, that streams as fast
 * as its connection takes: Watch sends `count` results with `text` repeated in each,
 * waiting only when grpc-js asks it to (write() false, then "drain"). It prints its port,
 * then "sent N" every 10 messages, so a test sees how far flow control let it get.
 */
const pkg = loadLabPackage() as unknown as {
  test: { lab: { v1: { Counter: { service: grpc.ServiceDefinition } } } };
};
type Op = { key: string; text: string; count: number };
const server = new grpc.Server();
server.addService(pkg.test.lab.v1.Counter.service, {
  Start: (call: grpc.ServerUnaryCall<Op, unknown>, callback: grpc.sendUnaryData<unknown>) =>
    callback(null, { key: call.request.key }),
  Watch: async (call: grpc.ServerWritableStream<Op, unknown>) => {
    const { key, text, count } = call.request;
    for (let i = 1; i <= count; i++) {
      if (call.cancelled) return;
      const more = call.write({ key, text });
      if (i % 10 === 0 || i === count) process.stdout.write(`sent ${i}\n`);
      if (!more) await new Promise((resolve) => call.once("drain", resolve));
    }
    call.end();
  },
});
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`port ${port}\n`);
});
