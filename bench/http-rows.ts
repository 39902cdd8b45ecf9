import type { Server } from "./bench-processes.js";
import { JsonLineChild } from "./children.js";
import { buildGoEcho } from "./go-echo.js";

/**
 * The HTTP rows (BENCH_ONLY=http): Connect unary calls from the same load generator, over
 * h2c, each bridged row next to its own direct row from the same run.
 *
 * - http-grpc-direct: gRPC straight to the grpc-go echo (the same as "direct", repeated so
 *   that BENCH_ONLY=http has its reference).
 * - http-json-bridged: Connect unary with application/json → the bridge's HTTP listener
 *   (JSON transcoded at the edge, DESIGN §7) → grpc-go echo over grpc://.
 * - http-connect-direct: Connect unary with application/proto straight to the connect-go
 *   echo.
 * - http-connect-bridged: the same → the bridge's HTTP listener → connect-go echo over
 *   http:// (the Connect outbound).
 *
 * The bridged rows call bench.v1.Echo/Call over BENCH_SESSIONS sessions on the memory
 * store, like bridged-memory.
 */
export type HttpPathKind =
  | "http-grpc-direct"
  | "http-json-bridged"
  | "http-connect-direct"
  | "http-connect-bridged";

export const HTTP_PATHS: readonly HttpPathKind[] = [
  "http-grpc-direct",
  "http-json-bridged",
  "http-connect-direct",
  "http-connect-bridged",
];

/** What each bridged HTTP row is divided by. */
export const HTTP_REFERENCE: Readonly<Partial<Record<HttpPathKind, HttpPathKind>>> = {
  "http-json-bridged": "http-grpc-direct",
  "http-connect-bridged": "http-connect-direct",
};

/** Starts the connect-go echo (built first when its sources changed) on a random port. */
export async function startGoConnectEcho(): Promise<Server> {
  const child = new JsonLineChild(
    "echo-connect-go",
    buildGoEcho("connect-echo", "sb-bench-connect-echo-go"),
    [],
    [],
    true,
  );
  const ready = await child.next("ready");
  return { child, pid: child.pid, address: `127.0.0.1:${String(ready.port)}`, stop: () => child.stop() };
}
