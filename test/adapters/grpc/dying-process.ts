import * as grpc from "@grpc/grpc-js";
import { loadLabPackage } from "../../support/lab-process.js";

/**
 * A process of the lab Counter contract run as its own OS process, so a test can kill it
 * (SIGKILL) in the middle of a call. Start answers when its key starts with "ok", else
 * never; Watch sends one message and then nothing. It prints its port, then "call <Method>" for each call it receives.
 */
const pkg = loadLabPackage() as unknown as {
  test: { lab: { v1: { Counter: { service: grpc.ServiceDefinition } } } };
};
const server = new grpc.Server();
const hang = (method: string) => () => {
  process.stdout.write(`call ${method}\n`);
};
server.addService(pkg.test.lab.v1.Counter.service, {
  Start: (call: grpc.ServerUnaryCall<{ key: string }, unknown>, callback: grpc.sendUnaryData<unknown>) => {
    process.stdout.write("call Start\n");
    if (call.request.key.startsWith("ok")) callback(null, { key: call.request.key });
  },
  Do: hang("Do"),
  Peek: hang("Peek"),
  Fire: hang("Fire"),
  Finish: hang("Finish"),
  Watch: (call: grpc.ServerWritableStream<{ key: string }, unknown>) => {
    call.write({ key: call.request.key, text: "first" });
    process.stdout.write("call Watch\n");
  },
  Upload: hang("Upload"),
  Chat: hang("Chat"),
});
server.bindAsync("127.0.0.1:0", grpc.ServerCredentials.createInsecure(), (error, port) => {
  if (error) throw error;
  process.stdout.write(`port ${port}\n`);
});
