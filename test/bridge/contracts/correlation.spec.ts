import { fromJson, type JsonValue, toBinary } from "@bufbuild/protobuf";
import { expect } from "chai";
import type { OperationContract } from "../../../bridge/contracts/contract.js";
import { extractCorrelation } from "../../../bridge/contracts/correlation.js";
import {
  correlationKey,
  correlationKeyOf,
  describeCorrelation,
} from "../../../bridge/contracts/correlation-key.js";
import { loadContracts } from "../../../bridge/contracts/load-contracts.js";
import { BridgeError } from "../../../bridge/errors/bridge-error.js";
import { Code } from "../../../bridge/errors/code.js";
import { Reason } from "../../../bridge/errors/reason.js";
import { fixturePath } from "../../support/repo-root.js";

const contracts = loadContracts({ importPaths: [fixturePath("contracts")], files: ["valid/types.proto"] });
const Scalars =
  contracts.registry.getMessage("fixtures.types.v1.Scalars") ?? expect.fail("no fixtures.types.v1.Scalars");

function op(method: string): OperationContract {
  const found = contracts.operations.get(`/fixtures.types.v1.Typed/${method}`);
  if (found === undefined) throw new Error(`no operation ${method}`);
  return found;
}

/** Encodes with @bufbuild/protobuf, from a JSON-like object (bytes, NaN and infinities allowed). */
function encode(fields: Record<string, unknown>): Uint8Array {
  const json = JSON.parse(
    JSON.stringify(fields, (_key, value: unknown) => {
      if (value instanceof Uint8Array) return Buffer.from(value).toString("base64");
      if (typeof value === "number" && !Number.isFinite(value)) return String(value);
      return value;
    }),
  ) as JsonValue;
  return toBinary(Scalars, fromJson(Scalars, json));
}

function concat(...parts: Uint8Array[]): Uint8Array {
  return Uint8Array.from(parts.flatMap((part) => [...part]));
}

/** The canonical value of the single variable "v". */
function canonical(method: string, payload: Uint8Array): string | undefined {
  return extractCorrelation(op(method), payload).values.v;
}

function failure(method: string, payload: Uint8Array): BridgeError {
  try {
    extractCorrelation(op(method), payload);
  } catch (error) {
    expect(error).to.be.instanceOf(BridgeError);
    return error as BridgeError;
  }
  expect.fail(`extracting ${method} should fail`);
}

describe("extractCorrelation", () => {
  describe("canonical values", () => {
    it("reads strings as UTF-8 text, non-ASCII included", () => {
      expect(canonical("ByText", encode({ text: "A-100" }))).to.equal("A-100");
      expect(canonical("ByText", encode({ text: "Zürich 東京 🚀" }))).to.equal("Zürich 東京 🚀");
      const long = "é".repeat(100);
      expect(canonical("ByText", encode({ text: long }))).to.equal(long);
    });

    it("reads bytes as base64url", () => {
      expect(canonical("ByBlob", encode({ blob: Uint8Array.from([0xfb, 0xff, 0x00, 0x3e]) }))).to.equal(
        "-_8APg",
      );
    });

    it("reads int32 with its sign, negative values sent as 10-byte varints", () => {
      const payload = encode({ i32: -5 });
      expect(payload.length).to.equal(11);
      expect(canonical("ByI32", payload)).to.equal("-5");
      expect(canonical("ByI32", encode({ i32: 2147483647 }))).to.equal("2147483647");
      expect(canonical("ByI32", encode({ i32: -2147483648 }))).to.equal("-2147483648");
    });

    it("reads 64-bit integers exactly, beyond 2^53 too", () => {
      expect(canonical("ByI64", encode({ i64: "-9223372036854775808" }))).to.equal("-9223372036854775808");
      expect(canonical("ByI64", encode({ i64: "9007199254740993" }))).to.equal("9007199254740993");
      expect(canonical("ByI64", encode({ i64: -1 }))).to.equal("-1");
      expect(canonical("ByU64", encode({ u64: "18446744073709551615" }))).to.equal("18446744073709551615");
      expect(canonical("ByU64", encode({ u64: "9007199254740993" }))).to.equal("9007199254740993");
      expect(canonical("ByU64", encode({ u64: 42 }))).to.equal("42");
      expect(canonical("ByU32", encode({ u32: 4294967295 }))).to.equal("4294967295");
    });

    it("undoes zigzag for sint32 and sint64", () => {
      expect(canonical("ByS32", encode({ s32: -1 }))).to.equal("-1");
      expect(canonical("ByS32", encode({ s32: -2147483648 }))).to.equal("-2147483648");
      expect(canonical("ByS32", encode({ s32: 2147483647 }))).to.equal("2147483647");
      expect(canonical("ByS64", encode({ s64: "-9223372036854775808" }))).to.equal("-9223372036854775808");
      expect(canonical("ByS64", encode({ s64: "9223372036854775807" }))).to.equal("9223372036854775807");
      expect(canonical("ByS64", encode({ s64: -3 }))).to.equal("-3");
    });

    it("reads fixed-width integers with their signedness", () => {
      expect(canonical("ByF32", encode({ f32: 4294967295 }))).to.equal("4294967295");
      expect(canonical("BySf32", encode({ sf32: -7 }))).to.equal("-7");
      expect(canonical("ByF64", encode({ f64: "18446744073709551615" }))).to.equal("18446744073709551615");
      expect(canonical("BySf64", encode({ sf64: "-9223372036854775807" }))).to.equal("-9223372036854775807");
      expect(canonical("BySf64", encode({ sf64: -2 }))).to.equal("-2");
    });

    it("prints floats as the shortest decimal that reads back, float as float32", () => {
      expect(canonical("ByDbl", encode({ dbl: 0.1 }))).to.equal("0.1");
      expect(canonical("ByDbl", encode({ dbl: -1.5e300 }))).to.equal("-1.5e+300");
      expect(canonical("ByDbl", encode({ dbl: Number.NaN }))).to.equal("NaN");
      expect(canonical("ByFlt", encode({ flt: 0.1 }))).to.equal("0.1");
      expect(canonical("ByFlt", encode({ flt: 3.4028234663852886e38 }))).to.equal("3.4028235e+38");
      expect(canonical("ByFlt", encode({ flt: -2.5 }))).to.equal("-2.5");
      expect(canonical("ByFlt", encode({ flt: 16777216 }))).to.equal("16777216");
      expect(canonical("ByFlt", encode({ flt: Number.NEGATIVE_INFINITY }))).to.equal("-Infinity");
    });

    it("reads bools and enums", () => {
      expect(canonical("ByFlag", encode({ flag: true }))).to.equal("true");
      expect(canonical("ByColor", encode({ color: "COLOR_BLUE" }))).to.equal("2");
      // An enum value the contract does not know is still a value (proto3 enums are open).
      expect(canonical("ByColor", concat(Uint8Array.from([0x80, 0x01, 0x07])))).to.equal("7");
    });

    it("follows nested paths and oneof members", () => {
      expect(canonical("ByTenant", encode({ header: { tenant: "acme" } }))).to.equal("acme");
      expect(canonical("ByShard", encode({ header: { inner: { shard: 12 } } }))).to.equal("12");
      expect(canonical("ByKey", encode({ key: "k-1" }))).to.equal("k-1");
    });

    it("binds every variable of a multi-variable set", () => {
      const extracted = extractCorrelation(op("ByPair"), encode({ text: "A-1", header: { tenant: "acme" } }));
      expect(extracted.set).to.equal("pair");
      expect(extracted.values).to.deep.equal({ tenant: "acme", id: "A-1" });
      expect(extracted.key).to.equal("4:pair|s4:acmes3:A-1");
    });
  });

  describe("protobuf merge semantics", () => {
    it("takes the last occurrence of a scalar", () => {
      expect(canonical("ByText", concat(encode({ text: "first" }), encode({ text: "second" })))).to.equal(
        "second",
      );
      expect(canonical("ByI32", concat(encode({ i32: 1 }), encode({ i32: -9 })))).to.equal("-9");
    });

    it("merges repeated occurrences of an embedded message, the last leaf winning", () => {
      const payload = concat(
        encode({ header: { tenant: "acme", inner: { shard: 1 } } }),
        encode({ text: "between" }),
        encode({ header: { inner: { shard: 2 } } }),
      );
      expect(canonical("ByShard", payload)).to.equal("2");
      // The second header has no tenant; the merged header keeps the first one's.
      expect(canonical("ByTenant", payload)).to.equal("acme");
    });

    it("skips fields off the path, groups and unknown fields included", () => {
      // Field 15 as a group holding field 1 = 5 and a nested group 14, then its end tag.
      const group = Uint8Array.from([(15 << 3) | 3, 0x08, 0x05, (14 << 3) | 3, (14 << 3) | 4, (15 << 3) | 4]);
      const payload = concat(
        encode({ blob: Uint8Array.from([1, 2]), dbl: 1, f32: 3, tags: ["a", "b"], labels: { x: "y" } }),
        Uint8Array.from([0x90, 0x03, 0x01, 0x99, 0x03, 1, 2, 3, 4, 5, 6, 7, 8]),
        group,
        encode({ text: "found" }),
      );
      expect(canonical("ByText", payload)).to.equal("found");
    });
  });

  describe("malformed and incomplete requests (S4)", () => {
    it("rejects a missing field with MISSING_CORRELATION_VALUE, naming the variable and path", () => {
      const error = failure("ByTenant", encode({ header: { inner: { shard: 1 } } }));
      expect(error.code).to.equal(Code.INVALID_ARGUMENT);
      expect(error.reason).to.equal(Reason.MISSING_CORRELATION_VALUE);
      expect(error.message).to.equal(
        "request for /fixtures.types.v1.Typed/ByTenant has no value for correlation variable v (field header.tenant)",
      );
      expect(error.metadata).to.deep.equal({
        operation: "/fixtures.types.v1.Typed/ByTenant",
        variable: "v",
        path: "header.tenant",
      });
    });

    it("treats default values as missing, whether or not the encoder wrote them", () => {
      // Some encoders write an explicitly set "" or 0; most write nothing. Both mean unset.
      expect(encode({ text: "" }).length).to.equal(0);
      const empty = Uint8Array.from([0x0a, 0x00]);
      const error = failure("ByText", empty);
      expect(error.reason).to.equal(Reason.MISSING_CORRELATION_VALUE);
      expect(error.message).to.equal(
        "request for /fixtures.types.v1.Typed/ByText has no value for correlation variable v (field text holds the default value, which counts as absent)",
      );
      expect(failure("ByText", encode({ text: "" })).reason).to.equal(Reason.MISSING_CORRELATION_VALUE);
      const written: [string, number[]][] = [
        ["ByI32", [0x18, 0x00]],
        ["ByFlag", [0x68, 0x00]],
        ["ByBlob", [0x12, 0x00]],
        ["ByDbl", [0x71, 0, 0, 0, 0, 0, 0, 0, 0]],
        ["ByColor", [0x80, 0x01, 0x00]],
      ];
      for (const [method, bytes] of written) {
        expect(failure(method, Uint8Array.from(bytes)).reason).to.equal(Reason.MISSING_CORRELATION_VALUE);
      }
      expect(failure("ByI32", encode({ i32: 0 })).reason).to.equal(Reason.MISSING_CORRELATION_VALUE);
      expect(failure("ByColor", encode({ color: "COLOR_UNSPECIFIED" })).reason).to.equal(
        Reason.MISSING_CORRELATION_VALUE,
      );
      expect(failure("ByText", new Uint8Array()).reason).to.equal(Reason.MISSING_CORRELATION_VALUE);
    });

    it("rejects truncated data with MALFORMED_MESSAGE", () => {
      const whole = encode({ text: "hello" });
      const error = failure("ByText", whole.subarray(0, whole.length - 1));
      expect(error.code).to.equal(Code.INVALID_ARGUMENT);
      expect(error.reason).to.equal(Reason.MALFORMED_MESSAGE);
      expect(error.message).to.equal(
        "malformed request for /fixtures.types.v1.Typed/ByText while reading correlation field text: truncated message",
      );
      expect(failure("ByI32", Uint8Array.from([0x18, 0xff])).reason).to.equal(Reason.MALFORMED_MESSAGE);
      expect(failure("ByDbl", Uint8Array.from([0x71, 0, 0, 0])).reason).to.equal(Reason.MALFORMED_MESSAGE);
      expect(failure("ByText", Uint8Array.from([0x98])).reason).to.equal(Reason.MALFORMED_MESSAGE);
    });

    it("rejects truncation inside a nested message, naming where", () => {
      const whole = encode({ header: { tenant: "acme" } });
      const broken = Uint8Array.from(whole);
      // Field 17 tag (2 bytes), header length, tenant tag, tenant length: make it run past the header.
      broken[4] = 9;
      expect(failure("ByTenant", broken).message).to.equal(
        "malformed request for /fixtures.types.v1.Typed/ByTenant while reading correlation field header.tenant inside header: truncated message",
      );
    });

    it("rejects a wrong wire type for an alias field", () => {
      const error = failure("ByText", Uint8Array.from([0x08, 0x01]));
      expect(error.reason).to.equal(Reason.MALFORMED_MESSAGE);
      expect(error.message).to.equal(
        "malformed request for /fixtures.types.v1.Typed/ByText while reading correlation field text: field text (number 1) has wire type 0, expected 2",
      );
      // A packed-style length-delimited int32 is not a singular int32.
      expect(failure("ByI32", Uint8Array.from([0x1a, 0x01, 0x05])).message).to.contain(
        "field i32 (number 3) has wire type 2, expected 0",
      );
    });

    it("rejects a varint longer than 10 bytes", () => {
      const payload = Uint8Array.from([
        0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
      ]);
      expect(failure("ByI32", payload).message).to.contain("varint longer than 10 bytes");
      const skipped = Uint8Array.from([
        0x28, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01,
      ]);
      expect(failure("ByText", skipped).message).to.contain("varint longer than 10 bytes");
    });

    it("rejects invalid UTF-8, bad wire types, field 0 and unbalanced groups", () => {
      expect(failure("ByText", Uint8Array.from([0x0a, 0x02, 0xc3, 0x28])).message).to.contain(
        "not valid UTF-8",
      );
      expect(failure("ByText", Uint8Array.from([0x17, 0x00])).message).to.contain(
        "field 2 has invalid wire type 7",
      );
      expect(failure("ByText", Uint8Array.from([0x14])).message).to.contain(
        "field 2 has invalid wire type 4",
      );
      expect(failure("ByText", Uint8Array.from([0x00, 0x00])).message).to.contain("invalid field number 0");
      expect(failure("ByText", Uint8Array.from([(15 << 3) | 3, (14 << 3) | 4])).message).to.contain(
        "group 15 closed by end-group 14",
      );
      expect(failure("ByText", Uint8Array.from([(15 << 3) | 3, 0x08, 0x01])).message).to.contain(
        "truncated message",
      );
    });
  });

  describe("value size limit", () => {
    it("accepts values up to defaults.maxCorrelationValueBytes (1024) and refuses longer ones, naming the path", () => {
      expect(canonical("ByText", encode({ text: "x".repeat(1024) }))).to.have.length(1024);
      const error = failure("ByText", encode({ text: "x".repeat(1025) }));
      expect(error.code).to.equal(Code.INVALID_ARGUMENT);
      expect(error.reason).to.equal(Reason.CORRELATION_VALUE_TOO_LARGE);
      expect(error.message).to.equal(
        "request for /fixtures.types.v1.Typed/ByText: correlation field text (variable v) holds 1025 bytes, more than the 1024 a correlation value may have",
      );
      expect(error.metadata).to.deep.equal({
        operation: "/fixtures.types.v1.Typed/ByText",
        variable: "v",
        path: "text",
        max_bytes: "1024",
      });
    });

    it("counts encoded bytes (UTF-8) against a configured limit, nested paths and bytes fields too", () => {
      // 3 characters, 6 bytes.
      const nested = encode({ header: { tenant: "äöü" } });
      expect(extractCorrelation(op("ByTenant"), nested, 6).values.v).to.equal("äöü");
      const error = (() => {
        try {
          extractCorrelation(op("ByTenant"), nested, 5);
        } catch (caught) {
          return caught as BridgeError;
        }
        expect.fail("a 6-byte value over a 5-byte limit should fail");
      })();
      expect(error.reason).to.equal(Reason.CORRELATION_VALUE_TOO_LARGE);
      expect(error.metadata.path).to.equal("header.tenant");
      expect(() => extractCorrelation(op("ByBlob"), encode({ blob: new Uint8Array(9) }), 8))
        .to.throw(BridgeError)
        .with.property("reason", Reason.CORRELATION_VALUE_TOO_LARGE);
      expect(extractCorrelation(op("ByI64"), encode({ i64: -1 }), 10).values.v).to.equal("-1");
    });
  });

  describe("keys", () => {
    it("separates values of different families with the same text (S5)", () => {
      const text = extractCorrelation(op("ByText"), encode({ text: "1" }));
      const int = extractCorrelation(op("ByI32"), encode({ i32: 1 }));
      const bool = extractCorrelation(op("ByFlag"), encode({ flag: true }));
      const str = extractCorrelation(op("ByText"), encode({ text: "true" }));
      expect(text.values.v).to.equal(int.values.v);
      expect(text.key).to.not.equal(int.key);
      expect(bool.key).to.not.equal(str.key);
      expect(text.key).to.equal("1:v|s1:1");
      expect(int.key).to.equal("1:v|i1:1");
    });

    it("gives the same key for the same value whatever the field or encoding", () => {
      const a = extractCorrelation(op("ByI32"), encode({ i32: 7 }));
      const b = extractCorrelation(op("ByI64"), encode({ i64: 7 }));
      const c = extractCorrelation(op("ByS64"), encode({ s64: 7 }));
      expect(a.key).to.equal(b.key);
      expect(b.key).to.equal(c.key);
    });

    it("cannot be confused by separators inside values", () => {
      const one = correlationKeyOf("s", [
        { family: "string", text: "a" },
        { family: "string", text: "s1:b" },
      ]);
      const two = correlationKeyOf("s", [
        { family: "string", text: "as1:" },
        { family: "string", text: "b" },
      ]);
      expect(one).to.not.equal(two);
      expect(correlationKeyOf("a|", [{ family: "string", text: "x" }])).to.not.equal(
        correlationKeyOf("a", [{ family: "string", text: "|x" }]),
      );
    });

    it("rebuilds the extracted key from stored canonical values", () => {
      const pair = op("ByPair");
      const extracted = extractCorrelation(pair, encode({ text: "A-1", header: { tenant: "acme" } }));
      const correlation = pair.correlation;
      if (correlation === undefined) expect.fail("ByPair correlates");
      expect(correlationKey(correlation, { id: "A-1", tenant: "acme" })).to.equal(extracted.key);
      expect(
        correlationKeyOf("pair", [
          { family: "string", text: "acme" },
          { family: "string", text: "A-1" },
        ]),
      ).to.equal(extracted.key);
      expect(() => correlationKey(correlation, { id: "A-1" }))
        .to.throw(BridgeError)
        .with.property("reason", Reason.MISSING_CORRELATION_VALUE);
    });

    it("describes values for messages", () => {
      expect(describeCorrelation({ tenant: "acme", id: 'A "1"' })).to.equal('tenant="acme", id="A \\"1\\""');
    });
  });
});
