/**
 * The CPU of node:http2's ClientHttp2Session#request() alone, with Node's own
 * AsyncResource#bind and with the one the gRPC transport installs (adapters/grpc/
 * async-bind.ts), in alternating batches in one process: the before/after of that change
 * without the noise of whole calls. Not a test.
 *
 *   node dist/bench/h2-request-micro.js [batches] [streams per batch]
 */
import { AsyncResource } from "node:async_hooks";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { installLeanAsyncBind } from "../adapters/grpc/async-bind.js";

const [batchesArg, sizeArg] = process.argv.slice(2);
const batches = Number(batchesArg ?? 60);
const size = Number(sizeArg ?? 100);
const WARMUP_BATCHES = 20;

const nodeBind = AsyncResource.prototype.bind;
installLeanAsyncBind();
const leanBind = AsyncResource.prototype.bind;

const server = http2.createServer();
server.on("stream", (stream) => {
  stream.respond({ ":status": 200 });
  stream.end();
});
await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
await new Promise((resolve) => client.once("connect", resolve));
const headers = {
  ":method": "POST",
  ":path": "/bench.v1.Plain/Call",
  "content-type": "application/grpc",
  te: "trailers",
};

const perCallUs: Record<"node" | "lean", number[]> = { node: [], lean: [] };
for (let round = 0; round < WARMUP_BATCHES + batches; round++) {
  for (const [name, bind] of [
    ["node", nodeBind],
    ["lean", leanBind],
  ] as const) {
    AsyncResource.prototype.bind = bind;
    const streams: http2.ClientHttp2Stream[] = [];
    const start = process.cpuUsage();
    for (let i = 0; i < size; i++) streams.push(client.request(headers, { endStream: true }));
    const used = process.cpuUsage(start);
    if (round >= WARMUP_BATCHES) perCallUs[name].push((used.user + used.system) / size);
    await Promise.all(
      streams.map(
        (stream) =>
          new Promise((resolve) => {
            stream.resume();
            stream.on("close", resolve);
          }),
      ),
    );
  }
}
AsyncResource.prototype.bind = leanBind;
client.close();
server.close();
const median = (values: number[]): number => [...values].sort((a, b) => a - b)[values.length >> 1] as number;
process.stdout.write(
  `ClientHttp2Session#request() CPU per call, median of ${batches} batches of ${size} (after ${WARMUP_BATCHES} warm-up): ` +
    `Node's AsyncResource#bind ${median(perCallUs.node).toFixed(1)} µs, the transport's ${median(perCallUs.lean).toFixed(1)} µs\n`,
);
