import path from "node:path";
import { fromBinary } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { expect } from "chai";
import type { ContractSet } from "../../../bridge/contracts/contract.js";
import { ContractError, type ContractProblem } from "../../../bridge/contracts/contract-error.js";
import { loadContracts } from "../../../bridge/contracts/load-contracts.js";
import { Code } from "../../../bridge/errors/code.js";
import { Reason } from "../../../bridge/errors/reason.js";
import { fixturePath, repoRoot } from "../../support/repo-root.js";

const FIXTURES = fixturePath("contracts");

function load(...files: string[]): ContractSet {
  return loadContracts({ importPaths: [FIXTURES], files });
}

/** The ContractError a load throws. */
function problemsOf(...files: string[]): ContractError {
  try {
    load(...files);
  } catch (error) {
    expect(error).to.be.instanceOf(ContractError);
    return error as ContractError;
  }
  expect.fail(`loading ${files.join(", ")} should fail`);
}

/** Where each fixture method's sessionbridge option is written (or the method, without one). */
const PLACES: Readonly<Record<string, { line: number; column: number }>> = {
  TwoSets: { line: 24, column: 12 },
  UndeclaredSet: { line: 30, column: 12 },
  UnknownVariable: { line: 33, column: 12 },
  UnboundVariable: { line: 38, column: 12 },
  DoubleAlias: { line: 41, column: 12 },
  MissingField: { line: 29, column: 12 },
  RepeatedLeaf: { line: 32, column: 12 },
  MapLeaf: { line: 35, column: 12 },
  MessageLeaf: { line: 38, column: 12 },
  RepeatedStep: { line: 41, column: 12 },
  ScalarStep: { line: 44, column: 12 },
  EmptyStep: { line: 47, column: 12 },
  NoCorrelation: { line: 16, column: 3 },
  StarterWithoutCorrelation: { line: 18, column: 12 },
  OneWayClientStream: { line: 21, column: 12 },
  OneWayServerStream: { line: 24, column: 12 },
  OneWayBidi: { line: 27, column: 12 },
  SharedEnd: { line: 30, column: 12 },
};

describe("loadContracts", () => {
  describe("the orders example", () => {
    const contracts = loadContracts({
      importPaths: [path.join(repoRoot(), "examples/orders/proto")],
      files: ["examples/orders/v1/orders.proto"],
    });

    it("loads one sessionful service with its options", () => {
      const service = contracts.services.get("examples.orders.v1.Orders");
      expect(service).to.not.equal(undefined);
      expect(service?.file).to.equal("examples/orders/v1/orders.proto");
      expect(service?.sessionful).to.equal(true);
      expect(service?.execution).to.equal("concurrent");
      expect(service?.idleTimeoutMs).to.equal(1_800_000);
      expect(service?.maxLifetimeMs).to.equal(undefined);
      expect(service?.startReuse).to.equal("join");
      expect([...(service?.correlationSets.values() ?? [])]).to.deep.equal([
        { name: "order", variables: ["order_id"] },
      ]);
      expect([...contracts.services.keys()]).to.deep.equal(["examples.orders.v1.Orders"]);
    });

    it("has its five operations with their flags", () => {
      const flags = [...contracts.operations.values()].map((op) => ({
        path: op.path,
        requestType: op.requestType,
        startsSession: op.startsSession,
        endsSession: op.endsSession,
        oneWay: op.oneWay,
        access: op.access,
        set: op.correlation?.set,
      }));
      const base = {
        startsSession: false,
        endsSession: false,
        oneWay: false,
        access: "exclusive",
        set: "order",
      };
      expect(flags).to.deep.equal([
        {
          ...base,
          path: "/examples.orders.v1.Orders/Open",
          requestType: "examples.orders.v1.OpenOrder",
          startsSession: true,
        },
        { ...base, path: "/examples.orders.v1.Orders/AddItem", requestType: "examples.orders.v1.AddItem" },
        {
          ...base,
          path: "/examples.orders.v1.Orders/Get",
          requestType: "examples.orders.v1.GetOrder",
          access: "shared",
        },
        {
          ...base,
          path: "/examples.orders.v1.Orders/Note",
          requestType: "examples.orders.v1.OrderNote",
          oneWay: true,
        },
        {
          ...base,
          path: "/examples.orders.v1.Orders/Checkout",
          requestType: "examples.orders.v1.CheckoutOrder",
          endsSession: true,
        },
      ]);
    });

    it("compiles the order_id alias", () => {
      const open = contracts.operations.get("/examples.orders.v1.Orders/Open");
      expect(open?.responseType).to.equal("examples.orders.v1.Order");
      expect(open?.requestStream).to.equal(false);
      expect(open?.responseStream).to.equal(false);
      expect(open?.correlation?.aliases).to.deep.equal([
        {
          variable: "order_id",
          path: "order_id",
          steps: [{ name: "order_id", number: 1, wireType: 2 }],
          leafType: "string",
          family: "string",
        },
      ]);
    });

    it("keeps the compiled definitions for adapters, with field names as declared", () => {
      const type = contracts.registry.getMessage("examples.orders.v1.AddItem");
      expect(type?.fields.map((f) => f.name)).to.deep.equal(["order_id", "sku", "qty"]);
      expect(contracts.registry.getMessage("google.protobuf.Empty")).to.not.equal(undefined);
    });
  });

  it("searches the configured import paths in order", () => {
    const contracts = loadContracts({
      importPaths: [path.join(FIXTURES, "shadow-a"), path.join(FIXTURES, "shadow-b")],
      files: ["shadow/v1/svc.proto"],
    });
    expect([...contracts.services.keys()]).to.deep.equal(["shadow.v1.First"]);
    expect(contracts.services.get("shadow.v1.First")?.file).to.equal("shadow/v1/svc.proto");
  });

  it("compiles the bridge's own files with every contract, a contract's own copy winning", () => {
    const names = (set: ContractSet) =>
      set.files.map((bytes) => fromBinary(FileDescriptorProtoSchema, bytes).name);
    const plain = load("valid/modalities.proto");
    expect(names(plain)).to.include.members([
      "sessionbridge/v1/options.proto",
      "sessionbridge/v1/session.proto",
      "grpc/health/v1/health.proto",
      "google/rpc/error_details.proto",
      "google/protobuf/descriptor.proto",
    ]);
    expect(plain.registry.getMessage("google.rpc.RetryInfo")).to.equal(undefined);
    const own = loadContracts({
      importPaths: [path.join(FIXTURES, "own-error-details")],
      files: ["uses/v1/uses.proto"],
    });
    expect(own.registry.getMessage("google.rpc.RetryInfo")).to.not.equal(undefined);
    expect(names(own).filter((name) => name === "google/rpc/error_details.proto")).to.have.length(1);
    // Served files carry no source info.
    expect(own.files.map((b) => fromBinary(FileDescriptorProtoSchema, b).sourceCodeInfo)).to.satisfy(
      (infos: unknown[]) => infos.every((info) => info === undefined),
    );
  });

  describe("alias compilation", () => {
    const contracts = load("valid/types.proto");
    const alias = (method: string) =>
      contracts.operations.get(`/fixtures.types.v1.Typed/${method}`)?.correlation;

    it("gives every scalar kind its wire type and family", () => {
      const kinds = Object.fromEntries(
        [...contracts.operations.values()]
          .filter((op) => op.correlation?.set === "v")
          .map((op) => {
            const compiled = op.correlation?.aliases[0];
            const leaf = compiled?.steps.at(-1);
            return [op.name, `${compiled?.leafType} ${leaf?.wireType} ${compiled?.family}`];
          }),
      );
      expect(kinds).to.deep.equal({
        ByText: "string 2 string",
        ByBlob: "bytes 2 bytes",
        ByI32: "int32 0 int",
        ByI64: "int64 0 int",
        ByU32: "uint32 0 int",
        ByU64: "uint64 0 int",
        ByS32: "sint32 0 int",
        ByS64: "sint64 0 int",
        ByF32: "fixed32 5 int",
        ByF64: "fixed64 1 int",
        BySf32: "sfixed32 5 int",
        BySf64: "sfixed64 1 int",
        ByFlag: "bool 0 bool",
        ByDbl: "double 1 float",
        ByFlt: "float 5 float",
        ByColor: "fixtures.types.v1.Color 0 int",
        ByKey: "string 2 string",
        ByTenant: "string 2 string",
        ByShard: "int64 0 int",
      });
    });

    it("compiles nested paths into message steps", () => {
      expect(alias("ByShard")?.aliases[0]?.steps).to.deep.equal([
        { name: "header", number: 17, wireType: 2 },
        { name: "inner", number: 2, wireType: 2 },
        { name: "shard", number: 1, wireType: 0 },
      ]);
    });

    it("orders the aliases of a multi-variable set as the set declares its variables", () => {
      expect(alias("ByPair")?.set).to.equal("pair");
      expect(alias("ByPair")?.aliases.map((a) => `${a.variable}=${a.path}`)).to.deep.equal([
        "tenant=header.tenant",
        "id=text",
      ]);
    });
  });

  describe("options", () => {
    it("merges options spread over several option lines and aggregate entries", () => {
      const contracts = load("valid/merged-options.proto");
      const service = contracts.services.get("fixtures.merged.v1.Merged");
      expect(service?.execution).to.equal("sequential");
      expect(service?.idleTimeoutMs).to.equal(60_000);
      expect(service?.maxLifetimeMs).to.equal(120_000);
      expect(service?.startReuse).to.equal("reject-duplicate");
      expect([...(service?.correlationSets.keys() ?? [])]).to.deep.equal(["a", "b"]);
      const op = (name: string) => contracts.operations.get(`/fixtures.merged.v1.Merged/${name}`);
      expect(op("Start")?.startsSession).to.equal(true);
      expect(op("Start")?.correlation?.set).to.equal("a");
      expect(op("Read")?.access).to.equal("shared");
      expect(op("Read")?.correlation?.set).to.equal("b");
      expect(op("Peek")?.access).to.equal("shared");
      expect(op("Stop")?.endsSession).to.equal(true);
      expect(op("Stop")?.oneWay).to.equal(true);
    });

    it("loads list literals and repeated message blocks to identical contracts", () => {
      const list = load("valid/aliases-list.proto");
      const blocks = load("valid/aliases-blocks.proto");
      const withoutFile = (set: ContractSet) =>
        [...set.services.values()].map(({ file: _file, ...service }) => service);
      expect(withoutFile(list)).to.deep.equal(withoutFile(blocks));
      expect([...list.operations.values()]).to.deep.equal([...blocks.operations.values()]);
      const open = list.operations.get("/fixtures.aliases.v1.Pairs/Open");
      expect(open?.correlation?.aliases.map((a) => `${a.variable}=${a.path}`)).to.deep.equal(["a=a", "b=b"]);
      expect([
        ...(list.services.get("fixtures.aliases.v1.Pairs")?.correlationSets.values() ?? []),
      ]).to.deep.equal([{ name: "pair", variables: ["a", "b"] }]);
    });

    it("loads the other text-format forms protoc accepts: no colon, angle brackets, separators, numbers", () => {
      const contracts = load("valid/text-format-forms.proto");
      const service = contracts.services.get("fixtures.forms.v1.Forms");
      expect(service?.execution).to.equal("sequential");
      expect([...(service?.correlationSets.values() ?? [])]).to.deep.equal([
        { name: "pair", variables: ["tenant", "id"] },
      ]);
      const op = (name: string) => contracts.operations.get(`/fixtures.forms.v1.Forms/${name}`);
      expect(op("Open")?.startsSession).to.equal(true);
      expect(op("Read")?.access).to.equal("shared");
      for (const name of ["Open", "Read"]) {
        expect(op(name)?.correlation?.aliases.map((a) => `${a.variable}=${a.path}`)).to.deep.equal([
          "tenant=header.tenant",
          "id=id",
        ]);
      }
    });

    it("treats a service without sessionbridge options as plain, and relaxes correlation outside CONCURRENT", () => {
      const contracts = load("valid/modalities.proto");
      const plain = contracts.services.get("fixtures.modalities.v1.Plain");
      expect(plain?.sessionful).to.equal(false);
      expect(plain?.operations.map((op) => [op.name, op.startsSession, op.correlation])).to.deep.equal([
        ["Echo", false, undefined],
        ["Watch", false, undefined],
      ]);
      expect(contracts.operations.get("/fixtures.modalities.v1.Plain/Watch")?.responseStream).to.equal(true);
      expect(contracts.services.get("fixtures.modalities.v1.Queue")?.execution).to.equal("sequential");
      expect(contracts.services.get("fixtures.modalities.v1.Queue")?.sessionful).to.equal(true);
      expect(contracts.services.get("fixtures.modalities.v1.Singleton")?.execution).to.equal("single");
      expect(contracts.operations.get("/fixtures.modalities.v1.Singleton/Use")?.requestStream).to.equal(true);
    });

    it("rejects unknown option fields, wrong values and misplaced options where the compiler finds them", () => {
      const file = "invalid/unknown-options.proto";
      const at = (line: number, column: number, message: string) => ({ file, line, column, message });
      expect(problemsOf(file).problems).to.deep.equal([
        at(13, 16, "cannot find `EXECUTION_MODALITY_PARALLEL` in this scope"),
        at(
          14,
          5,
          "cannot resolve message field name for `sessionbridge.v1.ServiceSessionOptions` (at idle_timeout: 1000)",
        ),
        at(
          18,
          37,
          "cannot find message field `start_session` in `sessionbridge.v1.MethodSessionOptions` (at .start_session)",
        ),
        at(
          19,
          74,
          'cannot resolve message field name for `sessionbridge.v1.CorrelationAlias` (at varible: "id")',
        ),
        at(24, 7, "message field `sessionbridge.v1.MethodSessionOptions.starts_session` set multiple times"),
        at(29, 13, "cannot find `sessionbridge.v1.methods` in this scope"),
        at(
          30,
          12,
          "expected `google.protobuf.MethodOptions` extension, found message extension in `google.protobuf.ServiceOptions` (at (sessionbridge.v1.service))",
        ),
        at(31, 51, 'mismatched types (at "yes")'),
      ]);
    });
  });

  describe("validation", () => {
    it("throws one INVALID_ARGUMENT ContractError listing every problem, one per line", () => {
      const error = problemsOf("invalid/sets.proto", "invalid/syntax.proto", "nowhere.proto");
      expect(error.code).to.equal(Code.INVALID_ARGUMENT);
      expect(error.reason).to.equal(Reason.INVALID_CONFIG);
      expect(error.problems).to.have.length(6);
      expect(error.message.split("\n")).to.deep.equal([
        "invalid contracts (6 problems):",
        ...error.problems.map((p) => {
          const at = p.line === undefined ? p.file : `${p.file}:${p.line}:${p.column}`;
          return p.service === undefined ? `${at}: ${p.message}` : `${at}: ${p.service}: ${p.message}`;
        }),
      ]);
      expect(error.message).to.contain(
        "invalid/sets.proto:12:10: fixtures.sets.v1.Sets: correlation set order is declared more than once",
      );
      expect(error.message).to.contain("invalid/syntax.proto:7:1: unexpected `}` after definition");
    });

    it("rejects a file that is in no import path", () => {
      const [problem] = problemsOf("nowhere.proto").problems;
      expect(problem?.file).to.equal("nowhere.proto");
      expect(problem?.message).to.match(
        /^file not found in the import paths \(searched .*test\/fixtures\/contracts, /,
      );
    });

    it("rejects a file that does not parse, naming its line and column", () => {
      expect(problemsOf("invalid/syntax.proto").problems).to.deep.equal([
        { file: "invalid/syntax.proto", line: 7, column: 1, message: "unexpected `}` after definition" },
      ]);
    });

    it("attributes a syntax error in an imported file to that file", () => {
      expect(problemsOf("invalid/uses-broken.proto").problems).to.deep.equal([
        { file: "invalid/syntax.proto", line: 7, column: 1, message: "unexpected `}` after definition" },
      ]);
    });

    it("names files as the configuration writes them", () => {
      expect(problemsOf("./invalid/syntax.proto").problems).to.deep.equal([
        { file: "./invalid/syntax.proto", line: 7, column: 1, message: "unexpected `}` after definition" },
      ]);
    });

    it("rejects an import that is in no import path", () => {
      const [problem, ...rest] = problemsOf("invalid/missing-import.proto").problems;
      expect(rest).to.deep.equal([]);
      expect(problem).to.deep.include({ file: "invalid/missing-import.proto", line: 5, column: 1 });
      expect(problem?.message).to.match(/^import "fixtures\/nowhere.proto" not found in the import paths/);
    });

    it("refuses file names and imports that leave the import path", () => {
      const [problem, ...rest] = problemsOf("invalid/dotdot-import.proto").problems;
      expect(rest).to.deep.equal([]);
      expect(problem).to.deep.equal({
        file: "invalid/dotdot-import.proto",
        line: 7,
        column: 1,
        message:
          'import "../contracts/valid/types.proto" is not a file name relative to an import path (forward slashes, no leading /, no empty, . or .. segments, as protoc requires)',
      });
      expect(problemsOf("../contracts/valid/types.proto").problems).to.deep.equal([
        {
          file: "../contracts/valid/types.proto",
          message:
            "not a file name relative to an import path (forward slashes, no leading /, no empty, . or .. segments, as protoc requires)",
        },
      ]);
    });

    it("rejects a reference to an undefined type, naming the file that makes it", () => {
      expect(problemsOf("invalid/unknown-type.proto").problems).to.deep.equal([
        {
          file: "invalid/unknown-type.proto",
          line: 6,
          column: 3,
          message: "cannot find `Missing` in this scope",
        },
      ]);
    });

    it("rejects duplicate, empty, unnamed and repetitive correlation sets", () => {
      const at = { file: "invalid/sets.proto", line: 12, column: 10, service: "fixtures.sets.v1.Sets" };
      expect(problemsOf("invalid/sets.proto").problems).to.deep.equal([
        { ...at, message: "correlation set order is declared more than once" },
        { ...at, message: "correlation set empty has no variables" },
        { ...at, message: "correlation set twice lists variable id more than once" },
        { ...at, message: "a correlation set has no name" },
      ]);
    });

    it("rejects operations whose correlation does not fit the service's sets", () => {
      const at = (method: string) => ({
        file: "invalid/correlation.proto",
        ...PLACES[method],
        service: "fixtures.correlation.v1.Correlated",
        method,
      });
      expect(problemsOf("invalid/correlation.proto").problems).to.deep.equal([
        {
          ...at("TwoSets"),
          message: "an operation belongs to at most one correlation set, but this one lists 2 (one, pair)",
        },
        {
          ...at("UndeclaredSet"),
          message:
            "correlation set order is not declared on service fixtures.correlation.v1.Correlated; it declares one, pair",
        },
        {
          ...at("UnknownVariable"),
          message: "alias for variable tenant, which set one does not have (its variables: id)",
        },
        {
          ...at("UnboundVariable"),
          message: "variable tenant of set pair has no alias; every variable of the set must be bound (S5)",
        },
        { ...at("DoubleAlias"), message: "variable id of set one has more than one alias" },
      ]);
    });

    it("rejects alias paths that miss a field or do not lead to one singular scalar", () => {
      const at = (method: string) => ({
        file: "invalid/alias-paths.proto",
        ...PLACES[method],
        service: "fixtures.paths.v1.Paths",
        method,
      });
      const problems = problemsOf("invalid/alias-paths.proto").problems;
      expect(problems).to.deep.equal([
        {
          ...at("MissingField"),
          message:
            'alias path "header.tennant" for variable v: message fixtures.paths.v1.Header has no field tennant; its fields are tenant',
        },
        {
          ...at("RepeatedLeaf"),
          message:
            'alias path "tags" for variable v: field tags of fixtures.paths.v1.Request is repeated; correlation needs a single value',
        },
        {
          ...at("MapLeaf"),
          message:
            'alias path "labels" for variable v: field labels of fixtures.paths.v1.Request is a map; correlation needs a single value',
        },
        {
          ...at("MessageLeaf"),
          message:
            'alias path "header" for variable v: field header of fixtures.paths.v1.Request is a message (fixtures.paths.v1.Header); the path must end at a scalar or enum field',
        },
        {
          ...at("RepeatedStep"),
          message:
            'alias path "headers.tenant" for variable v: field headers of fixtures.paths.v1.Request is repeated; correlation needs a single value',
        },
        {
          ...at("ScalarStep"),
          message:
            'alias path "text.length" for variable v: field text of fixtures.paths.v1.Request is string, not a message, so the path cannot continue past it',
        },
        {
          ...at("EmptyStep"),
          message: 'alias path "header..tenant" for variable v: empty field name in the path',
        },
      ]);
      // OneofMember and OptionalField are valid: oneof members and proto3 optional fields are singular.
      expect(problems.map((p) => p.method)).to.not.include.members(["OneofMember", "OptionalField"]);
    });

    it("rejects unroutable operations and one-way streams, and allows one-way enders and streaming starters", () => {
      const at = (method: string) => ({
        file: "invalid/flags.proto",
        ...PLACES[method],
        service: "fixtures.flags.v1.Flags",
        method,
      });
      expect(problemsOf("invalid/flags.proto").problems).to.deep.equal([
        {
          ...at("NoCorrelation"),
          message:
            "the operation is not a starter and has no correlation; in a CONCURRENT service its messages could not be routed to a session (S4)",
        },
        {
          ...at("StarterWithoutCorrelation"),
          message:
            "the operation starts a session but binds no correlation value, while the service declares correlation sets (v); the session could not be found by correlation (S2)",
        },
        {
          ...at("OneWayClientStream"),
          message: "one_way applies to unary methods only, but this method streams its requests",
        },
        {
          ...at("OneWayServerStream"),
          message: "one_way applies to unary methods only, but this method streams its responses",
        },
        {
          ...at("OneWayBidi"),
          message: "one_way applies to unary methods only, but this method streams both ways",
        },
        {
          ...at("SharedEnd"),
          message: "a shared (ACCESS_SHARED) operation cannot end the session; make it exclusive",
        },
      ]);
    });

    it("rejects negative, fractional and unrepresentable timeouts", () => {
      const file = "invalid/timeouts.proto";
      expect(problemsOf(file).problems).to.deep.equal([
        { file, line: 12, column: 55, message: "literal out of range for `uint64` (at -1)" },
        { file, line: 19, column: 58, message: "mismatched types (at 1.5)" },
        { file, line: 19, column: 79, message: 'mismatched types (at "soon")' },
      ]);
      expect(problemsOf("invalid/huge-timeout.proto").problems).to.deep.equal([
        {
          file: "invalid/huge-timeout.proto",
          line: 13,
          column: 3,
          service: "fixtures.huge.v1.Huge",
          message:
            "option field max_lifetime_ms is too large to represent exactly (uint64, at most 9007199254740991)",
        },
      ]);
    });

    it("validates the good files of a load even when another file is broken", () => {
      const problems: readonly ContractProblem[] = problemsOf(
        "invalid/syntax.proto",
        "invalid/flags.proto",
      ).problems;
      expect(problems.map((p) => p.file)).to.include.members(["invalid/syntax.proto", "invalid/flags.proto"]);
    });
  });
});
