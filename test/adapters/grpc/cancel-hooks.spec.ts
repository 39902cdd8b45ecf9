import { getEventListeners } from "node:events";
import * as grpc from "@grpc/grpc-js";
import { expect } from "chai";
import { CancelHooks, offerCancelHooks, onCancel } from "../../../adapters/grpc/cancel-hooks.js";
import { createGrpcTransport } from "../../../adapters/grpc/h2-outbound.js";
import { type GrpcServer, startGrpcServer } from "../../../adapters/grpc/h2-server.js";
import type { GrpcServerCall } from "../../../adapters/grpc/h2-server-call.js";
import { BridgeError } from "../../../bridge/errors/bridge-error.js";
import { Code } from "../../../bridge/errors/code.js";
import type { ProcessClient } from "../../../bridge/process/process-client.js";
import { echoUnaryDelivery, ECHO_UNARY_PATH as PATH } from "../../support/echo-delivery.js";
import { type PassthroughServer, startPassthroughServer } from "../../support/passthrough-server.js";
import { waitFor } from "../../support/wait.js";

const pass = (b: Buffer): Buffer => b;

describe("cancel hooks (the outbound hop hearing its caller leave)", () => {
  it("a signal without hooks gets an abort listener, removed when asked", () => {
    const controller = new AbortController();
    let heard = 0;
    const stop = onCancel(controller.signal, () => {
      heard += 1;
    });
    expect(getEventListeners(controller.signal, "abort")).to.have.length(1);
    stop();
    expect(getEventListeners(controller.signal, "abort")).to.have.length(0);
    const again = new AbortController();
    onCancel(again.signal, () => {
      heard += 1;
    });
    again.abort();
    again.abort();
    expect(heard).to.equal(1);
  });

  it("a signal with hooks runs them once, without an abort listener, and forgets the removed ones", () => {
    const controller = new AbortController();
    const hooks = new CancelHooks();
    offerCancelHooks(controller.signal, hooks);
    const heard: string[] = [];
    const stopA = onCancel(controller.signal, () => heard.push("a"));
    onCancel(controller.signal, () => heard.push("b"));
    expect(getEventListeners(controller.signal, "abort")).to.have.length(0);
    stopA();
    stopA();
    hooks.run();
    hooks.run();
    expect(heard).to.deep.equal(["b"]);
    // Registered after the run: never called (the owner aborts the signal as well, which a
    // caller checks before registering).
    onCancel(controller.signal, () => heard.push("late"));
    hooks.run();
    expect(heard).to.deep.equal(["b"]);
  });

  describe("a passthrough hop: inbound call → outbound call with the caller's signal", () => {
    let process: PassthroughServer;
    let outbound: ProcessClient;
    let inbound: GrpcServer;
    let client: grpc.Client;
    let processStarted = false;
    let processCancelled = false;
    let inboundCall: GrpcServerCall | undefined;
    let outboundFailure: unknown;

    before(async () => {
      process = await startPassthroughServer({
        [PATH]: {
          kind: "unary",
          handler: (call: grpc.ServerUnaryCall<Buffer, Buffer>) => {
            processStarted = true;
            call.on("cancelled", () => {
              processCancelled = true;
            });
          },
        },
      });
      outbound = createGrpcTransport().connect({
        name: "held",
        location: new URL(`grpc://127.0.0.1:${process.port}`),
        envelope: false,
      });
      inbound = await startGrpcServer({
        address: "127.0.0.1:0",
        maxMessageBytes: 1024 * 1024,
        handlers: new Map([
          [
            PATH,
            (call: GrpcServerCall) => {
              inboundCall = call;
              void call.message().then(async (payload) => {
                try {
                  // As the engine's passthrough does (bridge/engine/unary-call.ts): the caller's signal.
                  await outbound.unary(echoUnaryDelivery("m-1", payload, call.signal));
                } catch (error) {
                  outboundFailure = error;
                }
              });
            },
          ],
        ]),
      });
      client = new grpc.Client(inbound.address, grpc.credentials.createInsecure());
    });

    after(async () => {
      client.close();
      await inbound.drain(1000);
      await outbound.close();
      await process.close();
    });

    it("cancels the process's call when the client cancels, through the hooks rather than an abort listener", async () => {
      const call = client.makeUnaryRequest(PATH, pass, pass, Buffer.from("x"), () => {});
      await waitFor(() => processStarted, 5000, "the call reaches the process");
      const signal = (inboundCall as GrpcServerCall).signal;
      // An abort listener per call kept both streams' objects alive through scavenges.
      expect(getEventListeners(signal, "abort")).to.have.length(0);
      call.cancel();
      await waitFor(() => processCancelled, 5000, "the process sees the cancellation");
      await waitFor(() => outboundFailure !== undefined, 5000, "the outbound call ends");
      expect(outboundFailure).to.be.instanceOf(BridgeError);
      expect((outboundFailure as BridgeError).code).to.equal(Code.CANCELLED);
      expect(signal.aborted).to.equal(true);
    });
  });
});
