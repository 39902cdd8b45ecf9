import { randomBytes } from "node:crypto";
import { expect } from "chai";
import { frameMessage, MessageDecoder } from "../../../adapters/grpc/grpc-framing.js";

function decodeAll(chunks: readonly Buffer[]): { flag: number; message: Buffer }[] {
  const decoder = new MessageDecoder(2 ** 32);
  const out: { flag: number; message: Buffer }[] = [];
  for (const chunk of chunks) decoder.push(chunk, (flag, message) => out.push({ flag, message }));
  expect(decoder.partial).to.equal(false);
  return out;
}

describe("gRPC message framing", () => {
  const messages = [Buffer.from("a"), Buffer.alloc(0), randomBytes(300), randomBytes(20_000)];
  const wire = Buffer.concat(messages.flatMap((m) => frameMessage(m)));

  it("frames small messages in one buffer and large ones as prefix plus the message itself", () => {
    expect(frameMessage(Buffer.from("abc"))).to.have.length(1);
    const large = randomBytes(20_000);
    const [prefix, body] = frameMessage(large);
    expect(prefix?.toString("hex")).to.equal("0000004e20");
    expect(body).to.equal(large);
  });

  it("decodes messages packed into one chunk, as views of that chunk", () => {
    const out = decodeAll([wire]);
    expect(out.map((m) => m.message.toString("hex"))).to.deep.equal(messages.map((m) => m.toString("hex")));
    for (const { message } of out) if (message.length > 0) expect(message.buffer).to.equal(wire.buffer);
  });

  it("decodes the same bytes cut at every position, and one byte at a time", () => {
    const expected = messages.map((m) => m.toString("hex"));
    for (let cut = 1; cut < 400; cut++) {
      const out = decodeAll([wire.subarray(0, cut), wire.subarray(cut)]);
      expect(
        out.map((m) => m.message.toString("hex")),
        `cut at ${cut}`,
      ).to.deep.equal(expected);
    }
    const bytes = Array.from({ length: wire.length }, (_, i) => wire.subarray(i, i + 1));
    expect(decodeAll(bytes).map((m) => m.message.toString("hex"))).to.deep.equal(expected);
  });

  it("reports the compressed flag and a message still incomplete", () => {
    const frame = Buffer.concat(frameMessage(Buffer.from("zz")));
    frame[0] = 1;
    expect(decodeAll([frame])[0]?.flag).to.equal(1);
    const decoder = new MessageDecoder(2 ** 32);
    decoder.push(frame.subarray(0, 6), () => {});
    expect(decoder.partial).to.equal(true);
  });
});
