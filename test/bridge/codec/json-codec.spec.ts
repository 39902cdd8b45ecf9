import { fromBinary } from "@bufbuild/protobuf";
import { expect } from "chai";
import { createJsonCodec, type JsonCodec } from "../../../bridge/codec/json-codec.js";
import { loadContracts } from "../../../bridge/contracts/load-contracts.js";
import { BridgeError } from "../../../bridge/errors/bridge-error.js";
import { Code } from "../../../bridge/errors/code.js";
import { Reason } from "../../../bridge/errors/reason.js";
import { fixturePath } from "../../support/repo-root.js";

const CART = "fixtures.json.v1.Cart";
const contracts = loadContracts({
  importPaths: [fixturePath("contracts")],
  files: ["valid/json-shapes.proto"],
});

function failure(codec: JsonCodec, json: string): BridgeError {
  try {
    codec.toBinary(CART, json);
  } catch (error) {
    expect(error).to.be.instanceOf(BridgeError);
    return error as BridgeError;
  }
  expect.fail(`${json} should not transcode`);
}

describe("createJsonCodec", () => {
  const codec = createJsonCodec(contracts);

  it("round-trips the proto3 JSON mapping through binary", () => {
    const json = {
      cartId: "C-1",
      items: [
        { sku: "tea", qty: 2 },
        { sku: "jam", qty: 1 },
      ],
      bySku: { tea: { sku: "tea", qty: 2 } },
      notes: { "7": "ring twice" },
      updatedAt: "2026-01-02T03:04:05Z",
      total: "9007199254740993",
      kind: "KIND_GIFT",
      blob: "AQID",
      parent: { cartId: "C-0" },
      codes: [1, -2],
    };
    const bytes = codec.toBinary(CART, JSON.stringify(json));
    const schema = contracts.registry.getMessage(CART) ?? expect.fail("no Cart");
    const decoded = fromBinary(schema, bytes) as unknown as { total: bigint; items: { qty: number }[] };
    expect(decoded.total).to.equal(9007199254740993n);
    expect(decoded.items[1]?.qty).to.equal(1);
    expect(JSON.parse(codec.toJson(CART, bytes))).to.deep.equal(json);
  });

  it("accepts field names as declared as well as lowerCamelCase, and omits defaults when writing", () => {
    const bytes = codec.toBinary(CART, '{"cart_id":"C-2","total":0,"items":[{"sku":"","qty":0}]}');
    expect(JSON.parse(codec.toJson(CART, bytes))).to.deep.equal({ cartId: "C-2", items: [{}] });
  });

  it("names the field path of a value of the wrong type", () => {
    const error = failure(
      codec,
      '{"items":[{"sku":"a","qty":1},{"sku":"b","qty":2},{"sku":"c","qty":"three"}]}',
    );
    expect(error.code).to.equal(Code.INVALID_ARGUMENT);
    expect(error.reason).to.equal(Reason.MALFORMED_MESSAGE);
    expect(error.message).to.equal(
      'invalid fixtures.json.v1.Cart at items[2].qty: expected number (int32), got "three"',
    );
    expect(error.metadata).to.deep.equal({ type: CART, field: "items[2].qty" });
  });

  it("names paths into maps, nested messages, scalar lists, enums, bytes and well-known types", () => {
    const cases: [string, string][] = [
      ['{"bySku":{"tea":{"qty":true}}}', 'bySku["tea"].qty'],
      ['{"bySku":{"tea":{"sku":"tea"},"jam":[]}}', 'bySku["jam"]'],
      ['{"notes":{"x":"not an int32 key"}}', 'notes["x"]'],
      ['{"notes":{"1":2}}', 'notes["1"]'],
      ['{"parent":{"parent":{"total":"1.5"}}}', "parent.parent.total"],
      ['{"codes":[1,2,"x"]}', "codes[2]"],
      ['{"kind":"KIND_NONE"}', "kind"],
      ['{"blob":"!!"}', "blob"],
      ['{"updatedAt":"yesterday"}', "updatedAt"],
      ['{"items":{"sku":"a"}}', "items"],
      ['{"cartId":"C","unknownField":1}', "unknownField"],
    ];
    for (const [json, path] of cases) {
      const error = failure(codec, json);
      expect(error.reason, json).to.equal(Reason.MALFORMED_MESSAGE);
      expect(error.metadata.field, json).to.equal(path);
      expect(error.message, json).to.contain(` at ${path}: `);
    }
  });

  it("reports malformed JSON and a value that is not an object without a path", () => {
    const syntax = failure(codec, '{"cartId": ');
    expect(syntax.reason).to.equal(Reason.MALFORMED_MESSAGE);
    expect(syntax.message).to.match(/^invalid fixtures\.json\.v1\.Cart: not valid JSON: /);
    expect(syntax.metadata).to.deep.equal({ type: CART });
    expect(failure(codec, "[1]").metadata).to.deep.equal({ type: CART });
    expect(failure(codec, "null").reason).to.equal(Reason.MALFORMED_MESSAGE);
  });

  it("refuses input over the byte limit before parsing it, counting UTF-8 bytes", () => {
    const small = createJsonCodec(contracts, { maxInputBytes: 32 });
    const fits = `{"cartId":"${"x".repeat(19)}"}`;
    expect(Buffer.byteLength(fits)).to.equal(32);
    expect(small.toBinary(CART, fits)).to.have.length(21);
    // 31 characters, 34 bytes: over the limit although short in characters.
    const wide = `{"cartId":"${"é".repeat(3)}${"x".repeat(15)}"}`;
    expect(wide.length).to.be.lessThan(32);
    for (const text of [wide, `${fits} `, "{".repeat(1000)]) {
      expect(() => small.toBinary(CART, text))
        .to.throw(BridgeError)
        .that.deep.includes({ code: Code.RESOURCE_EXHAUSTED, reason: Reason.INVALID_REQUEST });
    }
    expect(() => small.toJson(CART, new Uint8Array(33)))
      .to.throw(BridgeError)
      .with.property("code", Code.RESOURCE_EXHAUSTED);
  });

  it("refuses JSON nested deeper than the limit before parsing it", () => {
    const nested = (depth: number) => `${'{"parent":'.repeat(depth)}{}${"}".repeat(depth)}`;
    const shallow = createJsonCodec(contracts, { maxDepth: 5 });
    expect(shallow.toBinary(CART, nested(4))).to.be.instanceOf(Uint8Array);
    const error = (() => {
      try {
        shallow.toBinary(CART, nested(5));
      } catch (caught) {
        return caught as BridgeError;
      }
      expect.fail("six levels over a limit of five");
    })();
    expect(error.reason).to.equal(Reason.MALFORMED_MESSAGE);
    expect(error.message).to.contain("nested deeper than 5 levels");
    // Brackets inside strings are text, not nesting.
    expect(shallow.toBinary(CART, JSON.stringify({ cartId: "[[[[[[[[{{{{{{" }))).to.have.length(16);
    // The default limit holds off input that would exhaust the stack.
    expect(() => codec.toBinary(CART, nested(100_000)))
      .to.throw(BridgeError)
      .with.property("reason", Reason.MALFORMED_MESSAGE);
  });

  it("refuses bytes that are not the message", () => {
    expect(() => codec.toJson(CART, Uint8Array.from([0x0a, 0x05, 0x61])))
      .to.throw(BridgeError)
      .that.deep.includes({ code: Code.INVALID_ARGUMENT, reason: Reason.MALFORMED_MESSAGE });
  });

  it("refuses invalid limits and unknown types", () => {
    expect(() => createJsonCodec(contracts, { maxInputBytes: 0 }))
      .to.throw(BridgeError)
      .with.property("code", Code.INVALID_ARGUMENT);
    expect(() => codec.toBinary("fixtures.json.v1.Nope", "{}"))
      .to.throw(BridgeError)
      .with.property("code", Code.INTERNAL);
  });
});
