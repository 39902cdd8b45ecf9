import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { expect } from "chai";
import {
  DEFAULT_GRPC_ADDRESS,
  DEFAULT_HTTP_ADDRESS,
  DEFAULT_MAX_MEMORY_BYTES,
  DEFAULT_SQLITE_PATH,
  DEFAULTS,
} from "../../../bridge/config/config.js";
import { ConfigError, formatConfigProblem } from "../../../bridge/config/config-error.js";
import { type LoadConfigOptions, loadConfig } from "../../../bridge/config/load-config.js";
import { Code } from "../../../bridge/errors/code.js";
import { Reason } from "../../../bridge/errors/reason.js";
import { fixturePath } from "../../support/repo-root.js";

const DIR = fixturePath("config");

function configError(options: LoadConfigOptions): ConfigError {
  try {
    loadConfig(options);
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    return error as ConfigError;
  }
  expect.fail("loading should fail");
}

/** The problems as the CLI prints them, one line each. */
function lines(options: LoadConfigOptions): string[] {
  return configError(options).problems.map(formatConfigProblem);
}

describe("loadConfig", () => {
  describe("embedded defaults", () => {
    let empty: string;
    before(() => {
      empty = mkdtempSync(path.join(tmpdir(), "sessionbridge-config-"));
    });
    after(() => rmSync(empty, { recursive: true, force: true }));

    it("applies when no file is given and the working directory has no sessionbridge.yaml", () => {
      expect(loadConfig({ cwd: empty })).to.deep.equal({
        source: undefined,
        contracts: { importPaths: [], files: [] },
        processes: [],
        listeners: { grpc: DEFAULT_GRPC_ADDRESS },
        store: { kind: "sqlite", path: path.join(empty, DEFAULT_SQLITE_PATH), synchronous: "full" },
        defaults: DEFAULTS,
      });
    });

    it("takes command-line overrides, a sqlite path relative to the working directory", () => {
      const config = loadConfig({ cwd: empty, overrides: { grpc: "[::]:7000", store: "sqlite:data/x.db" } });
      expect(config.listeners.grpc).to.equal("[::]:7000");
      expect(config.store).to.deep.equal({
        kind: "sqlite",
        path: path.join(empty, "data/x.db"),
        synchronous: "full",
      });
      expect(loadConfig({ cwd: empty, overrides: { store: "memory" } }).store).to.deep.equal({
        kind: "memory",
        maxMemoryBytes: DEFAULT_MAX_MEMORY_BYTES,
      });
    });

    it("serves HTTP on the start command's default unless the file or --http says another address or off", () => {
      // The library adds no HTTP listener of its own accord.
      expect(loadConfig({ cwd: empty }).listeners.http).to.equal(undefined);
      // `sessionbridge start` passes its default.
      expect(loadConfig({ cwd: empty, defaultHttp: DEFAULT_HTTP_ADDRESS }).listeners.http).to.equal(
        DEFAULT_HTTP_ADDRESS,
      );
      const off = loadConfig({ cwd: empty, defaultHttp: DEFAULT_HTTP_ADDRESS, overrides: { http: "off" } });
      expect(off.listeners.http).to.equal(undefined);
      const other = loadConfig({
        cwd: empty,
        defaultHttp: DEFAULT_HTTP_ADDRESS,
        overrides: { http: "127.0.0.1:0" },
      });
      expect(other.listeners.http).to.equal("127.0.0.1:0");
      const file = path.join(empty, "http-off.yaml");
      writeFileSync(file, "listeners:\n  http: off\n");
      expect(loadConfig({ cwd: empty, file, defaultHttp: DEFAULT_HTTP_ADDRESS }).listeners.http).to.equal(
        undefined,
      );
      expect(lines({ cwd: empty, overrides: { http: "of" } })).to.deep.equal([
        'command line: --http: not a host:port address (expected host:port with port 0-65535, IPv6 in brackets, got "of")',
      ]);
    });

    it("rejects invalid overrides as command-line problems", () => {
      expect(lines({ cwd: empty, overrides: { grpc: "localhost", store: "redis" } })).to.deep.equal([
        'command line: --grpc: not a host:port address (expected host:port with port 0-65535, IPv6 in brackets, got "localhost")',
        'command line: --store: unknown store (expected "memory", "sqlite:PATH" or "jetstream[:PREFIX]" (PREFIX: letters, digits, \'_\', \'-\'), got "redis")',
      ]);
    });
  });

  it("finds sessionbridge.yaml in the working directory", () => {
    const cwd = path.join(DIR, "discovered");
    const config = loadConfig({ cwd });
    expect(config.source).to.equal(path.join(cwd, "sessionbridge.yaml"));
    expect(config.store).to.deep.equal({ kind: "memory", maxMemoryBytes: DEFAULT_MAX_MEMORY_BYTES });
    expect(config.listeners.grpc).to.equal("localhost:6000");
  });

  it("reads every key, resolving paths against the config file's directory", () => {
    const config = loadConfig({ file: path.join(DIR, "full.yaml") });
    expect(config).to.deep.equal({
      source: path.join(DIR, "full.yaml"),
      contracts: { importPaths: [fixturePath("contracts"), "/opt/protos"], files: ["valid/types.proto"] },
      processes: [
        {
          name: "typed",
          services: ["fixtures.types.v1.Typed"],
          location: "grpc://127.0.0.1:50061",
          envelope: true,
        },
        {
          name: "other.process_2",
          services: ["fixtures.other.v1.Other", "fixtures.more.v1.*"],
          location: "grpc://[::1]:50062",
          envelope: false,
        },
      ],
      listeners: { grpc: "0.0.0.0:0" },
      store: { kind: "sqlite", path: path.join(DIR, "state/bridge.db"), synchronous: "normal" },
      defaults: {
        idleTimeoutMs: 60_000,
        maxLifetimeMs: 3_600_000,
        idempotencyRetentionMs: 7_200_000,
        sessionRetentionMs: 10_800_000,
        maxPayloadBytes: 1_048_576,
        maxCorrelationValueBytes: 256,
        oneWay: { maxAttempts: 3, initialBackoffMs: 50, maxBackoffMs: 800, attemptTimeoutMs: 2000 },
      },
    });
  });

  it("resolves a relative file name against the working directory", () => {
    const config = loadConfig({ file: "config/full.yaml", cwd: fixturePath() });
    expect(config.source).to.equal(path.join(DIR, "full.yaml"));
    expect(config.contracts.importPaths[0]).to.equal(fixturePath("contracts"));
  });

  it("fills what a file leaves out from the defaults, the default store under the working directory", () => {
    const cwd = fixturePath();
    const config = loadConfig({ file: path.join(DIR, "partial.yaml"), cwd });
    expect(config.contracts).to.deep.equal({ importPaths: [DIR], files: [] });
    expect(config.processes).to.deep.equal([]);
    expect(config.listeners.grpc).to.equal("[::1]:50055");
    expect(config.store).to.deep.equal({
      kind: "sqlite",
      path: path.join(cwd, DEFAULT_SQLITE_PATH),
      synchronous: "full",
    });
    expect(config.defaults).to.deep.equal({
      ...DEFAULTS,
      idleTimeoutMs: 1000,
      oneWay: { ...DEFAULTS.oneWay, maxBackoffMs: 400 },
    });
  });

  it("lets command-line overrides win over the file", () => {
    const config = loadConfig({
      file: path.join(DIR, "full.yaml"),
      cwd: "/srv",
      overrides: { grpc: "127.0.0.1:9", store: "sqlite:run/s.db" },
    });
    expect(config.listeners.grpc).to.equal("127.0.0.1:9");
    expect(config.store).to.deep.equal({ kind: "sqlite", path: "/srv/run/s.db", synchronous: "normal" });
    expect(
      loadConfig({ file: path.join(DIR, "full.yaml"), overrides: { store: "memory" } }).store,
    ).to.deep.equal({
      kind: "memory",
      maxMemoryBytes: DEFAULT_MAX_MEMORY_BYTES,
    });
  });

  describe("problems", () => {
    it("reports every problem at once as FILE:LINE:COL: path: message", () => {
      const file = path.join(DIR, "errors.yaml");
      const error = configError({ file });
      expect(error.code).to.equal(Code.INVALID_ARGUMENT);
      expect(error.reason).to.equal(Reason.INVALID_CONFIG);
      expect(error.problems[0]).to.deep.equal({
        file,
        line: 2,
        column: 16,
        path: "contracts.importPaths",
        message: 'not a list (expected a list of directories, got "proto")',
      });
      const f = "errors.yaml";
      expect(lines({ file: f, cwd: DIR })).to.deep.equal([
        `${f}:2:16: contracts.importPaths: not a list (expected a list of directories, got "proto")`,
        `${f}:3:11: contracts.files[0]: not a relative path (expected a .proto file relative to an import path, got "/abs/orders.proto")`,
        `${f}:3:30: contracts.files[1]: not a string (expected a .proto file relative to an import path, got 7)`,
        `${f}:4:3: contracts.file: unknown key, did you mean files? (expected one of importPaths, files)`,
        `${f}:7:43: processes[0].services[1]: service listed twice in this process (expected each service once, got "examples.orders.v1.Orders")`,
        `${f}:8:15: processes[0].location: unsupported location scheme ws (expected grpc://host:port or http://host:port[/prefix][?codec=json|proto] or nats://subject.prefix, got "ws://127.0.0.1:50061")`,
        `${f}:9:11: processes[1].name: duplicate process name, first used by processes[0] (expected unique names, got "orders")`,
        `${f}:10:15: processes[1].services: empty list (expected at least one service, got an empty list)`,
        `${f}:11:15: processes[1].location: invalid port (expected grpc://host:port, got "grpc://localhost:0")`,
        `${f}:12:5: processes[1].envelop: unknown key, did you mean envelope? (expected one of name, services, location, envelope)`,
        `${f}:13:5: processes[2].name: required key missing (expected a name of letters, digits, '.', '_' and '-')`,
        `${f}:13:16: processes[2].services[0]: invalid service name (expected a full service name such as examples.orders.v1.Orders, or a package and .* such as examples.orders.v1.*, got "not a name")`,
        `${f}:14:15: processes[2].location: invalid port (expected grpc://host:port, got "grpc://[::1]:99999")`,
        `${f}:15:15: processes[2].envelope: not a boolean (expected true or false, got "yes")`,
        `${f}:16:11: processes[3].name: invalid process name (expected a name of letters, digits, '.', '_' and '-', got "bad name")`,
        `${f}:18:15: processes[3].location: not a location URL (expected grpc://host:port or http://host:port[/prefix][?codec=json|proto] or nats://subject.prefix, got "127.0.0.1:50063")`,
        `${f}:20:9: listeners.grpc: IPv6 address not in brackets (expected host:port with port 0-65535, IPv6 in brackets, got "::1:50051")`,
        `${f}:21:3: listeners.htttp: unknown key, did you mean http? (expected one of grpc, http, httpTls, httpCookies, nats)`,
        `${f}:22:8: store: unknown store (expected "memory", "sqlite:PATH" or "jetstream[:PREFIX]" (PREFIX: letters, digits, '_', '-'), got "postgres://db")`,
        `${f}:23:30: storeOptions.synchronous: unknown value (expected "full" or "normal", got "always")`,
        `${f}:25:18: defaults.idleTimeoutMs: not positive (expected a positive integer, got -5)`,
        `${f}:26:18: defaults.maxLifetimeMs: not an integer (expected a positive integer, got 1.5)`,
        `${f}:27:20: defaults.maxPayloadBytes: not a number (expected a positive integer, got "4MB")`,
        `${f}:28:3: defaults.sessionRetention: unknown key, did you mean sessionRetentionMs? (expected one of idleTimeoutMs, maxLifetimeMs, idempotencyRetentionMs, sessionRetentionMs, maxPayloadBytes, maxCorrelationValueBytes, timeScale, oneWay)`,
        `${f}:29:26: defaults.oneWay.maxAttempts: not positive (expected a positive integer, got 0)`,
        `${f}:29:66: defaults.oneWay.maxBackoffMs: smaller than initialBackoffMs (expected at least 500, got 100)`,
      ]);
      expect(error.message.split("\n")[0]).to.equal("invalid configuration (26 problems):");
    });

    it("reports YAML syntax errors with their place", () => {
      // Written here rather than kept as a fixture: the repository's formatter rejects invalid YAML.
      const dir = mkdtempSync(path.join(tmpdir(), "sessionbridge-config-"));
      const text =
        "listeners:\n  grpc: 127.0.0.1:50051\n  grpc: 127.0.0.1:50052\nprocesses: [\n  { name: a\n";
      writeFileSync(path.join(dir, "syntax.yaml"), text);
      try {
        expect(lines({ file: "syntax.yaml", cwd: dir })).to.deep.equal([
          "syntax.yaml:3:3: YAML syntax error: Map keys must be unique",
          "syntax.yaml:6:1: YAML syntax error: Flow map in block collection must be sufficiently indented and end with a }",
          "syntax.yaml:6:1: YAML syntax error: Flow sequence in block collection must be sufficiently indented and end with a ]",
        ]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("accepts package.* as a service pattern and refuses other wildcards", () => {
      const expected =
        "invalid service name (expected a full service name such as examples.orders.v1.Orders, or a package and .* such as examples.orders.v1.*, got";
      expect(lines({ file: "bad-patterns.yaml", cwd: DIR })).to.deep.equal([
        `bad-patterns.yaml:4:16: processes[0].services[0]: ${expected} "*")`,
        `bad-patterns.yaml:4:21: processes[0].services[1]: ${expected} "examples.*.v1")`,
        `bad-patterns.yaml:4:38: processes[0].services[2]: ${expected} "examples.orders.v1.**")`,
        `bad-patterns.yaml:4:87: processes[0].services[4]: ${expected} ".*")`,
        'bad-patterns.yaml:7:38: processes[1].services[1]: service listed twice in this process (expected each service once, got "examples.orders.v1.*")',
      ]);
    });

    it("checks backoff order against the defaults and storeOptions against the store", () => {
      expect(lines({ file: "memory-options.yaml", cwd: DIR })).to.deep.equal([
        'memory-options.yaml:3:3: storeOptions.synchronous: not an option of the memory store (expected only maxMemoryBytes with store "memory")',
        "memory-options.yaml:6:23: defaults.oneWay.initialBackoffMs: larger than maxBackoffMs (expected at most 10000, got 20000)",
      ]);
    });

    it("takes storeOptions.maxMemoryBytes with the memory store only, as a positive integer", () => {
      const dir = mkdtempSync(path.join(tmpdir(), "sessionbridge-config-"));
      const write = (name: string, text: string) => writeFileSync(path.join(dir, name), text);
      write("budget.yaml", "store: memory\nstoreOptions:\n  maxMemoryBytes: 1048576\n");
      write("bad-budget.yaml", "store: memory\nstoreOptions: { maxMemoryBytes: 0 }\n");
      write("text-budget.yaml", "store: memory\nstoreOptions: { maxMemoryBytes: 64MB }\n");
      write("sqlite-budget.yaml", "store: sqlite:x.db\nstoreOptions:\n  maxMemoryBytes: 1048576\n");
      write("default-budget.yaml", "storeOptions:\n  synchronous: full\n  maxMemoryBytes: 1048576\n");
      try {
        expect(loadConfig({ file: "budget.yaml", cwd: dir }).store).to.deep.equal({
          kind: "memory",
          maxMemoryBytes: 1048576,
        });
        expect(lines({ file: "bad-budget.yaml", cwd: dir })).to.deep.equal([
          "bad-budget.yaml:2:33: storeOptions.maxMemoryBytes: not positive (expected a positive integer, got 0)",
        ]);
        expect(lines({ file: "text-budget.yaml", cwd: dir })).to.deep.equal([
          'text-budget.yaml:2:33: storeOptions.maxMemoryBytes: not a number (expected a positive integer, got "64MB")',
        ]);
        expect(lines({ file: "sqlite-budget.yaml", cwd: dir })).to.deep.equal([
          'sqlite-budget.yaml:3:3: storeOptions.maxMemoryBytes: an option of the memory store only (expected no maxMemoryBytes with store "sqlite:x.db")',
        ]);
        // A file that names no store uses SQLite.
        expect(lines({ file: "default-budget.yaml", cwd: dir })).to.deep.equal([
          'default-budget.yaml:3:3: storeOptions.maxMemoryBytes: an option of the memory store only (expected no maxMemoryBytes with store "sqlite")',
        ]);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it("reports a document that is not a mapping", () => {
      expect(lines({ file: "not-a-mapping.yaml", cwd: DIR })).to.deep.equal([
        "not-a-mapping.yaml:1:1: not a mapping (expected a mapping, got a list)",
      ]);
    });

    it("reports a missing file that was asked for", () => {
      expect(lines({ file: "absent.yaml", cwd: DIR })).to.deep.equal([
        "absent.yaml: cannot read the config file: file not found",
      ]);
    });

    it("puts command-line problems after the file's", () => {
      const found = lines({ file: "not-a-mapping.yaml", cwd: DIR, overrides: { grpc: "x:70000" } });
      expect(found).to.deep.equal([
        "not-a-mapping.yaml:1:1: not a mapping (expected a mapping, got a list)",
        'command line: --grpc: invalid port (expected host:port with port 0-65535, IPv6 in brackets, got "x:70000")',
      ]);
    });
  });
});
