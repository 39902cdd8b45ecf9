import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import path from "node:path";
import { createInterface } from "node:readline";
import type { Metadata } from "../../bridge/call/metadata.js";
import { Code, codeFromNumber } from "../../bridge/errors/code.js";
import type { LabTransport, RawCall, RawOutcome } from "./lab-transport.js";
import { repoRoot } from "./repo-root.js";

/** Built by scripts/install-tools.sh from test/go/grpc-client. */
export const GRPC_GO_CLIENT = path.join(repoRoot(), ".tools/bin/sb-grpc-go-client");

/** Keep the end of the client's stderr for failure messages, not all of it. */
const STDERR_KEEP_CHARS = 8192;

interface GoEvent {
  readonly id: number;
  readonly event: "message" | "end";
  readonly data?: string;
  readonly code?: number;
  readonly message?: string;
  readonly details?: string;
  readonly headers?: Record<string, string[]>;
  readonly trailers?: Record<string, string[]>;
}

interface Pending {
  readonly call: RawCall;
  readonly resolve: (outcome: RawOutcome) => void;
  readonly reject: (error: Error) => void;
  readonly onAbort: () => void;
}

/**
 * Lab calls through a real grpc-go client: one long-running Go process per bridge address,
 * driven by JSON lines, running calls concurrently, each with a real context deadline so
 * grpc-go chooses its own grpc-timeout unit (S15).
 */
export function startGrpcGoTransport(address: string): LabTransport {
  if (!existsSync(GRPC_GO_CLIENT)) {
    throw new Error(`${GRPC_GO_CLIENT} is missing: run bash scripts/install-tools.sh`);
  }
  const child = spawn(GRPC_GO_CLIENT, [address], { stdio: ["pipe", "pipe", "pipe"] });
  const pending = new Map<number, Pending>();
  let nextId = 1;
  let stderr = "";
  let gone: Error | undefined;

  child.stderr.setEncoding("utf8");
  child.stderr.on("data", (chunk: string) => {
    stderr = (stderr + chunk).slice(-STDERR_KEEP_CHARS);
  });
  // Writes after the process died fail here; the exit handler rejects the calls.
  child.stdin.on("error", () => {});
  const exited = new Promise<void>((resolve) => {
    child.once("close", (code, signal) => {
      gone = new Error(`sb-grpc-go-client exited (${code ?? signal}); stderr: ${stderr}`);
      for (const p of pending.values()) p.reject(gone);
      pending.clear();
      resolve();
    });
  });
  child.once("error", (error) => {
    gone = error;
    for (const p of pending.values()) p.reject(error);
    pending.clear();
  });

  createInterface({ input: child.stdout }).on("line", (line) => {
    let event: GoEvent;
    try {
      event = JSON.parse(line) as GoEvent;
    } catch {
      gone = new Error(`sb-grpc-go-client wrote a line that is not JSON: ${line.slice(0, 200)}`);
      child.kill("SIGKILL");
      return;
    }
    const p = pending.get(event.id);
    if (p === undefined) return;
    if (event.event === "message") {
      p.call.onMessage(Buffer.from(event.data ?? "", "base64"));
      return;
    }
    pending.delete(event.id);
    p.call.signal?.removeEventListener("abort", p.onAbort);
    p.resolve({
      code: codeFromNumber(event.code ?? Code.OK),
      message: event.message ?? "",
      statusDetails: event.details === undefined ? undefined : Buffer.from(event.details, "base64"),
      headers: neutral(event.headers),
      // As RawOutcome says: the status details travel in statusDetails only.
      trailers: neutral(event.trailers, "grpc-status-details-bin"),
    });
  });

  const send = (command: object): void => {
    child.stdin.write(`${JSON.stringify(command)}\n`);
  };

  return {
    name: "grpc-go",
    call(call) {
      if (gone !== undefined) return Promise.reject(gone);
      const id = nextId++;
      return new Promise((resolve, reject) => {
        const onAbort = (): void => send({ id, op: "cancel" });
        pending.set(id, { call, resolve, reject, onAbort });
        send({
          id,
          op: "call",
          kind: call.kind,
          method: call.path,
          requests: call.requests.map((r) =>
            Buffer.from(r.buffer, r.byteOffset, r.byteLength).toString("base64"),
          ),
          metadata: call.metadata,
          ...(call.timeoutMs === undefined ? {} : { timeout_ms: Math.max(0, Math.ceil(call.timeoutMs)) }),
        });
        if (call.signal?.aborted) onAbort();
        else call.signal?.addEventListener("abort", onAbort, { once: true });
      });
    },
    async close() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      // End of input: the client cancels what still runs, reports it, and exits.
      child.stdin.end();
      const timer = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(timer);
    },
  };
}

function neutral(md: Record<string, string[]> | undefined, without?: string): Metadata {
  const out: Record<string, readonly string[]> = {};
  for (const [key, values] of Object.entries(md ?? {})) {
    if (key.toLowerCase() !== without) out[key.toLowerCase()] = values;
  }
  return out;
}
