import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import path from "node:path";
import * as grpc from "@grpc/grpc-js";
import { ServiceAddresses, ServiceSettings } from "../../sdk/gen/sessionbridge/conformance/v1/harness.js";
import {
  ActRequest,
  LabReply,
  LabServiceService,
  SequentialLabServiceService,
  SingleLabServiceService,
} from "../../sdk/gen/sessionbridge/conformance/v1/lab.js";
import { repoRoot } from "../support/repo-root.js";

/** The launcher build.sh writes for the Java lab service. */
export const JAVA_LAB = path.join(repoRoot(), ".tools/conformance/java/sb-lab-java");

/** Largest ServiceAddresses reply accepted from the service, checked before buffering more. */
const MAX_ADDRESSES_BYTES = 64 * 1024;

/** Runs a conformance build script (idempotent; Maven only when its stamp changed). */
export function buildConformance(script: string): void {
  execFileSync("bash", [path.join(repoRoot(), script)], {
    cwd: repoRoot(),
    stdio: ["ignore", "ignore", "inherit"],
  });
}

export interface JavaLabOptions {
  readonly stateDir?: string;
  readonly timeScale?: number;
  /** The rule to break: `--break <name>` of the faulty services. */
  readonly breakRule?: string;
  /** ServiceSettings.transports; gRPC alone unless told. */
  readonly transports?: readonly string[];
  readonly natsUrl?: string;
  readonly natsSubjectPrefix?: string;
}

/** A Java lab service started with the harness protocol (harness.proto). */
export interface JavaLab {
  readonly child: ChildProcess;
  readonly addresses: ServiceAddresses;
  readonly stderr: () => string;
  /** Closes stdin (the harness's way to stop it) and waits for the exit. */
  stop(): Promise<void>;
  /** kill -9, for the durability duty. */
  kill(): Promise<void>;
}

export function startJavaLab(options: JavaLabOptions = {}): Promise<JavaLab> {
  const args = options.breakRule === undefined ? [] : ["--break", options.breakRule];
  const child = spawn(JAVA_LAB, args, { cwd: repoRoot(), stdio: ["pipe", "pipe", "pipe"] });
  let stderr = "";
  child.stderr?.on("data", (d: Buffer) => {
    stderr += d.toString();
  });
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  const settings = ServiceSettings.encode(
    ServiceSettings.fromPartial({
      stateDir: options.stateDir ?? "",
      timeScale: options.timeScale ?? 1,
      transports: [...(options.transports ?? ["grpc"])],
      natsUrl: options.natsUrl ?? "",
      natsSubjectPrefix: options.natsSubjectPrefix ?? "",
    }),
  ).finish();
  const frame = Buffer.alloc(4 + settings.length);
  frame.writeUInt32BE(settings.length, 0);
  Buffer.from(settings).copy(frame, 4);
  child.stdin?.write(frame);
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const fail = (why: string) => {
      child.kill("SIGKILL");
      reject(new Error(`${why}; stderr: ${stderr}`));
    };
    void exited.then(() =>
      reject(new Error(`the Java lab service exited before answering; stderr: ${stderr}`)),
    );
    child.stdout?.on("data", (d: Buffer) => {
      buffered = Buffer.concat([buffered, d]);
      if (buffered.length < 4) return;
      const length = buffered.readUInt32BE(0);
      if (length > MAX_ADDRESSES_BYTES) return fail(`ServiceAddresses of ${length} bytes`);
      if (buffered.length < 4 + length) return;
      const addresses = ServiceAddresses.decode(buffered.subarray(4, 4 + length));
      resolve({
        child,
        addresses,
        stderr: () => stderr,
        async stop() {
          child.stdin?.end();
          await exited;
        },
        async kill() {
          child.kill("SIGKILL");
          await exited;
        },
      });
    });
  });
}

/**
 * The sessionless PingLabService (lab.proto): its one operation, declared here from the
 * request and reply codecs so the client does not depend on how the generator names it.
 */
const PING_SERVICE: grpc.ServiceDefinition = {
  ping: {
    path: "/sessionbridge.conformance.v1.PingLabService/Ping",
    requestStream: false,
    responseStream: false,
    requestSerialize: (value: ActRequest) => Buffer.from(ActRequest.encode(value).finish()),
    requestDeserialize: (bytes: Buffer) => ActRequest.decode(bytes),
    responseSerialize: (value: LabReply) => Buffer.from(LabReply.encode(value).finish()),
    responseDeserialize: (bytes: Buffer) => LabReply.decode(bytes),
  },
};

/** grpc-js clients of the four lab services at one address. */
export interface LabClients {
  readonly lab: grpc.Client;
  readonly sequential: grpc.Client;
  readonly single: grpc.Client;
  readonly ping: grpc.Client;
  close(): void;
}

export function labClients(address: string): LabClients {
  const credentials = grpc.credentials.createInsecure();
  const Lab = grpc.makeGenericClientConstructor(LabServiceService, "LabService");
  const Sequential = grpc.makeGenericClientConstructor(SequentialLabServiceService, "SequentialLabService");
  const Single = grpc.makeGenericClientConstructor(SingleLabServiceService, "SingleLabService");
  const Ping = grpc.makeGenericClientConstructor(PING_SERVICE, "PingLabService");
  // One channel for all four, so calls of a test share one HTTP/2 connection, as the
  // runner's and the bridge's do (the order of pipelined calls is kept per connection).
  const channel = new grpc.Channel(address, credentials, {});
  const lab = new Lab(address, credentials, { channelOverride: channel });
  const sequential = new Sequential(address, credentials, { channelOverride: channel });
  const single = new Single(address, credentials, { channelOverride: channel });
  const ping = new Ping(address, credentials, { channelOverride: channel });
  return {
    lab,
    sequential,
    single,
    ping,
    close() {
      lab.close();
      sequential.close();
      single.close();
      ping.close();
      channel.close();
    },
  };
}
