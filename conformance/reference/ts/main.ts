import { mkdirSync } from "node:fs";
import { ServiceAddresses, ServiceSettings } from "../../../sdk/gen/sessionbridge/conformance/v1/harness.js";
import { startConnectLabServer } from "./connect-lab-server.js";
import { startGrpcLabServer } from "./grpc-lab-server.js";
import { LabLogic } from "./lab-logic.js";
import { LabStore } from "./lab-store.js";
import { startNatsLabServer } from "./nats-lab-server.js";

/**
 * The TypeScript reference service of the conformance suite (harness.proto): reads one
 * size-delimited ServiceSettings on stdin, serves the lab contract on every transport
 * asked for, answers one size-delimited ServiceAddresses on stdout, and serves until
 * stdin closes or SIGTERM.
 *
 * `--break <name>` turns on one documented deviation, so the suite can be shown to catch
 * it: `seq-reapply` (S7), `drop-metadata` (S15), `never-expire` (S12), `ignore-deadline` (S15).
 */
const BREAKS = new Set(["seq-reapply", "drop-metadata", "never-expire", "ignore-deadline"]);

/** Reads the settings without consuming stdin for good: its end later means "stop". */
function readSettings(): Promise<ServiceSettings> {
  return new Promise((resolve, reject) => {
    let buffered = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buffered = Buffer.concat([buffered, chunk]);
      if (buffered.length < 4) return;
      const length = buffered.readUInt32BE(0);
      if (length > 1024 * 1024) {
        done();
        reject(new Error(`settings of ${length} bytes are more than this service reads`));
        return;
      }
      if (buffered.length < 4 + length) return;
      done();
      resolve(ServiceSettings.decode(buffered.subarray(4, 4 + length)));
    };
    const onEnd = () => {
      done();
      reject(new Error("stdin closed before the settings arrived"));
    };
    const done = () => {
      process.stdin.off("data", onData);
      process.stdin.off("end", onEnd);
      process.stdin.pause();
    };
    process.stdin.on("data", onData);
    process.stdin.on("end", onEnd);
  });
}

async function main(argv: readonly string[]): Promise<void> {
  const breaks = new Set<string>();
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--break") {
      const name = argv[++i] ?? "";
      if (!BREAKS.has(name)) throw new Error(`unknown --break ${name}; known: ${[...BREAKS].join(", ")}`);
      breaks.add(name);
    }
  }
  const settings = await readSettings();
  mkdirSync(settings.stateDir, { recursive: true });
  const store = new LabStore(settings.stateDir);
  const logic = new LabLogic({ store, timeScale: settings.timeScale, breaks });
  const wanted = settings.transports.length === 0 ? ["grpc", "http", "nats"] : settings.transports;
  const grpc = wanted.includes("grpc") ? await startGrpcLabServer(logic) : undefined;
  const http = wanted.includes("http") ? await startConnectLabServer(logic) : undefined;
  const nats =
    wanted.includes("nats") && settings.natsUrl !== ""
      ? await startNatsLabServer(logic, settings.natsUrl, settings.natsSubjectPrefix || "lab")
      : undefined;
  const answer = ServiceAddresses.encode({
    grpc: grpc?.address ?? "",
    http: http?.url ?? "",
    nats: nats?.prefix ?? "",
  }).finish();
  const frame = Buffer.alloc(4 + answer.length);
  frame.writeUInt32BE(answer.length, 0);
  frame.set(answer, 4);
  process.stdout.write(frame);
  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await Promise.allSettled([grpc?.close(), http?.close(), nats?.close()]);
    store.close();
    process.exit(0);
  };
  process.stdin.on("end", () => void stop());
  process.stdin.on("close", () => void stop());
  process.stdin.resume();
  process.on("SIGTERM", () => void stop());
}

main(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`sb-lab-ts: ${error instanceof Error ? error.message : String(error)}\n`);
  process.exit(1);
});
