import { type ChildProcess, spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { constants } from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { packageRoot } from "../../bridge/util/package-root.js";

/**
 * `npm start`: the orders example process on 127.0.0.1:50061 and the bridge in front of it
 * on its embedded defaults (gRPC 127.0.0.1:50051, SQLite at .sessionbridge/sessions.db),
 * each its own process. Once both are ready it prints what to try. Ctrl-C stops both: the
 * bridge drains first (a second Ctrl-C is ignored, a third forces it), then the process
 * stops, and npm start exits with the bridge's exit status. `npm start -- --nats
 * nats://HOST:PORT` serves the example on that NATS server as well (subjects
 * sb.examples.orders.v1.Orders.<Method>).
 *
 * The children run in their own process groups, so the terminal's Ctrl-C reaches only
 * this launcher, which forwards every signal to the bridge; the process is stopped only
 * after the bridge has exited, because calls the bridge finishes while draining still
 * need it.
 */
const root = packageRoot();
const PROCESS_ADDRESS = "127.0.0.1:50061";
const BRIDGE_ADDRESS = "127.0.0.1:50051";
const HTTP_ADDRESS = "127.0.0.1:8080";
const children: ChildProcess[] = [];
const natsAt = process.argv.indexOf("--nats");
const NATS_URL = natsAt === -1 ? undefined : process.argv[natsAt + 1];
if (natsAt !== -1 && (NATS_URL === undefined || NATS_URL.startsWith("-"))) {
  process.stderr.write("npm start: --nats needs a URL, e.g. npm start -- --nats nats://127.0.0.1:4222\n");
  process.exit(2);
}

/** Starts a child, echoes its output, and resolves when a stdout line matches `ready`. */
function launch(
  name: string,
  args: readonly string[],
  ready: (line: string) => boolean,
): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, args, {
      cwd: root,
      stdio: ["ignore", "pipe", "inherit"],
      detached: true,
    });
    children.push(child);
    let isReady = false;
    createInterface({ input: child.stdout }).on("line", (line) => {
      process.stdout.write(`[${name}] ${line}\n`);
      if (!isReady && ready(line)) {
        isReady = true;
        resolve(child);
      }
    });
    child.once("exit", (code, signal) => {
      if (!isReady) reject(new Error(`${name} exited before it was ready (${signal ?? `code ${code}`})`));
    });
  });
}

function running(child: ChildProcess | undefined): child is ChildProcess {
  return child !== undefined && child.exitCode === null && child.signalCode === null;
}

function stopAll(signal: NodeJS.Signals): void {
  for (const child of children) if (running(child)) child.kill(signal);
}

/** A child's exit status as a shell reports it: its code, or 128 + the signal's number. */
function exitStatus(code: number | null, signal: NodeJS.Signals | null): number {
  if (code !== null) return code;
  return 128 + (signal === null ? 0 : (constants.signals[signal] ?? 0));
}

let bridge: ChildProcess | undefined;
// Registered before anything starts, so an early Ctrl-C never leaves a child behind.
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
  process.on(signal, () => {
    const forwarded = signal === "SIGHUP" ? "SIGTERM" : signal;
    // The bridge counts the signals itself: a second during its drain is ignored, a third forces it.
    if (running(bridge)) bridge.kill(forwarded);
    else stopAll(forwarded);
  });
}

const messageOf = (line: string): string | undefined => {
  try {
    return (JSON.parse(line) as { msg?: string }).msg;
  } catch {
    return undefined;
  }
};

try {
  await launch(
    "orders",
    ["dist/examples/orders/orders-main.js", PROCESS_ADDRESS, ".sessionbridge/orders.db"],
    (l) => messageOf(l) === "orders process ready",
  );
  const started = await launch(
    "bridge",
    [
      "dist/cli/main.js",
      "start",
      "--config",
      "examples/orders/sessionbridge.yaml",
      "--grpc",
      BRIDGE_ADDRESS,
      ...(NATS_URL === undefined ? [] : ["--nats", NATS_URL]),
    ],
    (l) => messageOf(l) === "sessionbridge ready",
  );
  bridge = started;
  const grpcurl = existsSync(path.join(root, ".tools/bin/grpcurl")) ? ".tools/bin/grpcurl" : "grpcurl";
  const natsCli = existsSync(path.join(root, ".tools/bin/nats")) ? ".tools/bin/nats" : "nats";
  const call = (method: string, body: string) =>
    `  ${grpcurl} -plaintext -d '${body}' ${BRIDGE_ADDRESS} examples.orders.v1.Orders/${method}`;
  process.stdout.write(
    [
      "",
      `sessionbridge is serving the orders example on ${BRIDGE_ADDRESS} (gRPC) and ${HTTP_ADDRESS} (HTTP) (the process listens on ${PROCESS_ADDRESS}).`,
      "",
      "Try it from another terminal (grpcurl: `bash scripts/install-tools.sh` puts one in .tools/bin):",
      `  ${grpcurl} -plaintext ${BRIDGE_ADDRESS} list`,
      call("Open", '{"order_id":"A-1","customer":"ada"}'),
      call("AddItem", '{"order_id":"A-1","sku":"tea","qty":2}'),
      call("Note", '{"order_id":"A-1","text":"ring twice"}'),
      call("Get", '{"order_id":"A-1"}'),
      call("Checkout", '{"order_id":"A-1"}'),
      "",
      "Or over HTTP with the Connect protocol (JSON in, JSON out; the session id is in the sb-session-id header):",
      `  curl -i -H 'Content-Type: application/json' -d '{"orderId":"A-2","customer":"ada"}' http://${HTTP_ADDRESS}/examples.orders.v1.Orders/Open`,
      `  curl -H 'Content-Type: application/json' -d '{"orderId":"A-2"}' http://${HTTP_ADDRESS}/examples.orders.v1.Orders/Get`,
      "",
      ...(NATS_URL === undefined
        ? []
        : [
            "",
            `On NATS (${NATS_URL}; the nats CLI is in .tools/bin too):`,
            `  ${natsCli} -s ${NATS_URL} req sb.examples.orders.v1.Orders.Open '{"orderId":"A-2","customer":"ada"}' -H Content-Type:application/json`,
            `  ${natsCli} -s ${NATS_URL} micro info sessionbridge`,
            "",
          ]),
      "  node dist/cli/main.js sessions list",
      "  node dist/cli/main.js sessions history <SESSION_ID>     (the id is in the sb-session-id header: grpcurl -v)",
      "",
      "Ctrl-C stops both.",
      "",
    ].join("\n"),
  );
  const status = await new Promise<number>((resolve) =>
    started.once("exit", (code, signal) => resolve(exitStatus(code, signal))),
  );
  stopAll("SIGTERM");
  process.exitCode = status;
} catch (error) {
  process.stderr.write(`npm start: ${error instanceof Error ? error.message : String(error)}\n`);
  stopAll("SIGTERM");
  process.exitCode = 1;
}
