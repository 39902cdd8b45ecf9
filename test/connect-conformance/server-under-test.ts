/**
 * The server under test of the Connect conformance suite (connectrpc.com/conformance,
 * server mode): the bridge in front of the suite's reference server.
 *
 * The runner writes one ServerCompatRequest (4-byte big-endian length, then the message)
 * on stdin and expects one ServerCompatResponse with the address to test. This program
 * starts the reference server the same way, over HTTP/2 cleartext with the gRPC protocol,
 * starts a bridge whose process location is that server, and answers with the bridge's
 * HTTP port, which serves Connect, gRPC-Web and gRPC on HTTP/1.1 and h2c. Every call the
 * runner makes crosses the bridge's inbound, engine and gRPC outbound.
 */
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import type { Readable, Writable } from "node:stream";
import { create, type DescMessage, fromBinary, type MessageShape, toBinary } from "@bufbuild/protobuf";
import { loadBridgeSetup } from "../../bridge/config/check-config.js";
import { startBridgeRuntime } from "../../cli/bridge-runtime.js";
import { repoRoot } from "../support/repo-root.js";

const CONFIG = path.join(repoRoot(), "test/connect-conformance/conformance-bridge.yaml");
const REFERENCE_SERVER = path.join(repoRoot(), ".tools/bin/referenceserver");
/** Largest handshake message accepted: the requests are a few hundred bytes. */
const MAX_HANDSHAKE_BYTES = 1 << 20;

async function main(): Promise<void> {
  const setup = loadBridgeSetup({ file: CONFIG });
  const registry = setup.contracts.registry;
  const requestType = message(registry.getMessage("connectrpc.conformance.v1.ServerCompatRequest"));
  const responseType = message(registry.getMessage("connectrpc.conformance.v1.ServerCompatResponse"));

  const request = fromBinary(requestType, await readDelimited(process.stdin));
  if ((request as unknown as { useTls?: boolean }).useTls === true)
    throw new Error("TLS is not supported by this server under test");

  // The reference server behind the bridge: HTTP/2 cleartext, gRPC, whatever the runner asked for the rest.
  const reference = spawn(REFERENCE_SERVER, [], { stdio: ["pipe", "pipe", "inherit"] });
  const referenceRequest = create(requestType, {
    ...request,
    protocol: 2, // PROTOCOL_GRPC
    httpVersion: 2, // HTTP_VERSION_2
    useTls: false,
  } as MessageShape<DescMessage>);
  writeDelimited(reference.stdin as Writable, toBinary(requestType, referenceRequest));
  const referenceAddress = fromBinary(
    responseType,
    await readDelimited(reference.stdout as Readable),
  ) as unknown as {
    host: string;
    port: number;
  };

  const location = `grpc://${referenceAddress.host}:${referenceAddress.port}`;
  const runtime = await startBridgeRuntime({
    config: {
      ...setup.config,
      processes: setup.config.processes.map((p) => ({ ...p, location })),
    },
    contracts: setup.contracts,
  });
  const port = runtime.http?.port;
  if (port === undefined) throw new Error("the bridge has no HTTP listener");
  writeDelimited(
    process.stdout,
    toBinary(responseType, create(responseType, { host: "127.0.0.1", port } as never)),
  );

  const stop = async (): Promise<void> => {
    await runtime.stop(1_000).catch(() => {});
    stopChild(reference);
    process.exit(0);
  };
  process.once("SIGTERM", () => void stop());
  process.once("SIGINT", () => void stop());
  reference.once("exit", () => void stop());
}

function message(found: DescMessage | undefined): DescMessage {
  if (found === undefined) throw new Error("the conformance protos are not loaded");
  return found;
}

function stopChild(child: ChildProcess): void {
  if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
}

function writeDelimited(out: Writable, bytes: Uint8Array): void {
  const prefix = Buffer.alloc(4);
  prefix.writeUInt32BE(bytes.length, 0);
  out.write(Buffer.concat([prefix, bytes]));
}

/** Reads one length-delimited message, checking the length before it waits for the bytes. */
function readDelimited(input: Readable): Promise<Uint8Array> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer): void => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 4) return;
      const length = buffered.readUInt32BE(0);
      if (length > MAX_HANDSHAKE_BYTES) {
        finish();
        reject(new Error(`handshake message of ${length} bytes is over ${MAX_HANDSHAKE_BYTES}`));
        return;
      }
      if (buffered.length < 4 + length) return;
      finish();
      const rest = buffered.subarray(4 + length);
      if (rest.length > 0) input.unshift(rest);
      resolve(buffered.subarray(4, 4 + length));
    };
    const onEnd = (): void => {
      finish();
      reject(new Error("input ended before a whole handshake message"));
    };
    const finish = (): void => {
      input.off("data", onData);
      input.off("end", onEnd);
      input.pause();
    };
    input.on("data", onData);
    input.on("end", onEnd);
  });
}

main().catch((error: unknown) => {
  process.stderr.write(`server under test: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
