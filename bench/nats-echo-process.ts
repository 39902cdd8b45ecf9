/**
 * The echo process as a NATS service, for the NATS rows: answers requests on
 * `<prefix>.Open` and `<prefix>.Call` with an EchoReply carrying the request's payload,
 * like the gRPC echo process. Prints {"type":"ready"} once subscribed.
 *
 *   node dist/bench/nats-echo-process.js <nats-url> <subject-prefix>
 */
import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { connect } from "@nats-io/transport-node";

const [url, prefix] = process.argv.slice(2);
if (url === undefined || prefix === undefined) {
  process.stderr.write("usage: nats-echo-process <nats-url> <subject-prefix>\n");
  process.exit(2);
}

const nc = await connect({ servers: url, name: "bench-nats-echo" });
/** EchoRequest.payload (field 2) as EchoReply.payload (field 1). */
function echo(request: Uint8Array): Uint8Array {
  const reader = new BinaryReader(request);
  let payload: Uint8Array = new Uint8Array(0);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 2 && wireType === 2) payload = reader.bytes();
    else reader.skip(wireType);
  }
  return new BinaryWriter().uint32(10).bytes(payload).finish();
}
nc.subscribe(`${prefix}.*`, {
  callback: (error, msg) => {
    if (error === null) msg.respond(echo(msg.data));
  },
});
await nc.flush();
process.stdout.write(`${JSON.stringify({ type: "ready" })}\n`);
process.stdin.resume();
process.stdin.on("close", () => {
  void nc.close().then(() => process.exit(0));
});
