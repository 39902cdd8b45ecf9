import { execFile } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { nkeys } from "@nats-io/transport-node";
import { expect } from "chai";
import { loadBridgeSetup } from "../../../bridge/config/check-config.js";
import type { BridgeConfig, NatsConfig } from "../../../bridge/config/config.js";
import { ConfigError, formatConfigProblem } from "../../../bridge/config/config-error.js";
import { loadConfig } from "../../../bridge/config/load-config.js";
import { BridgeError } from "../../../bridge/errors/bridge-error.js";
import { Code } from "../../../bridge/errors/code.js";
import { startBridgeRuntime } from "../../../cli/bridge-runtime.js";
import { LAB_CONFIG, startLabHarness } from "../../support/lab-harness.js";
import { NATS_CLI_BIN, startNatsServer } from "../../support/nats-server.js";

const run = promisify(execFile);

const NONE: NatsConfig = {
  url: "",
  prefix: "sb",
  queue: "sessionbridge",
  token: undefined,
  user: undefined,
  password: undefined,
  credsFile: undefined,
  nkeyFile: undefined,
  tls: undefined,
  intake: [],
};

function withNats(nats: NatsConfig) {
  return (config: BridgeConfig): BridgeConfig => ({ ...config, listeners: { ...config.listeners, nats } });
}

/** A bridge with these NATS settings answers `nats req` on the server (reached with `cliArgs`). */
async function servesOn(nats: NatsConfig, cliArgs: readonly string[]): Promise<void> {
  const harness = await startLabHarness("memory", { adjust: withNats(nats) });
  try {
    const { stdout } = await run(
      NATS_CLI_BIN,
      [
        "-s",
        nats.url,
        ...cliArgs,
        "--timeout",
        "10s",
        "req",
        "sb.test.lab.v1.Plain.Echo",
        '{"key":"auth"}',
        "-H",
        "Content-Type:application/json",
      ],
      { timeout: 30_000 },
    );
    expect(stdout).to.include('"key":"auth"');
  } finally {
    await harness.close();
  }
}

/** Starts a bridge with these settings, which must fail; nothing else is started. */
async function refusedStart(nats: NatsConfig): Promise<BridgeError> {
  const setup = loadBridgeSetup({ file: LAB_CONFIG, overrides: { store: "memory" } });
  try {
    const runtime = await startBridgeRuntime({
      config: withNats(nats)(setup.config),
      contracts: setup.contracts,
    });
    await runtime.stop(0);
  } catch (error) {
    expect(error).to.be.instanceOf(BridgeError);
    return error as BridgeError;
  }
  expect.fail("the bridge started with wrong credentials");
}

describe("NATS connection options", function () {
  this.timeout(60_000);
  let dir: string;

  before(() => {
    dir = mkdtempSync(path.join(tmpdir(), "sb-nats-auth-"));
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  it("token: the right one serves, a wrong one refuses to start with UNAVAILABLE", async () => {
    const server = await startNatsServer({ extraConfig: 'authorization { token: "tok-123" }' });
    try {
      await servesOn({ ...NONE, url: server.url, token: "tok-123" }, ["--user", "tok-123"]);
      const refused = await refusedStart({ ...NONE, url: server.url, token: "wrong" });
      expect(refused.code).to.equal(Code.UNAVAILABLE);
      expect(refused.message).to.include("cannot connect to NATS");
    } finally {
      await server.stop();
    }
  });

  it("user and password", async () => {
    const server = await startNatsServer({
      extraConfig: 'authorization { user: "bridge", password: "pw-1" }',
    });
    try {
      await servesOn({ ...NONE, url: server.url, user: "bridge", password: "pw-1" }, [
        "--user",
        "bridge",
        "--password",
        "pw-1",
      ]);
      expect(
        (await refusedStart({ ...NONE, url: server.url, user: "bridge", password: "no" })).code,
      ).to.equal(Code.UNAVAILABLE);
    } finally {
      await server.stop();
    }
  });

  it("an NKey seed file", async () => {
    const user = nkeys.createUser();
    const seedFile = path.join(dir, "bridge.nk");
    writeFileSync(seedFile, new TextDecoder().decode(user.getSeed()));
    const server = await startNatsServer({
      extraConfig: `authorization { users: [ { nkey: "${user.getPublicKey()}" } ] }`,
    });
    try {
      await servesOn({ ...NONE, url: server.url, nkeyFile: seedFile }, ["--nkey", seedFile]);
    } finally {
      await server.stop();
    }
  });

  it("TLS with the server's CA", async () => {
    const tls = path.join(dir, "tls");
    await makeCertificates(tls);
    const server = await startNatsServer({
      extraConfig: `tls { cert_file: "${path.join(tls, "server.pem")}", key_file: "${path.join(tls, "server.key")}" }`,
    });
    try {
      const url = server.url.replace(/^nats:/, "tls:");
      await servesOn(
        {
          ...NONE,
          url,
          tls: { caFile: path.join(tls, "ca.pem"), certFile: undefined, keyFile: undefined },
        },
        ["--tlsca", path.join(tls, "ca.pem")],
      );
      // Without the CA the server's certificate is not trusted.
      expect((await refusedStart({ ...NONE, url })).code).to.equal(Code.UNAVAILABLE);
    } finally {
      await server.stop();
    }
  });

  it("reads listeners.nats from YAML, paths relative to the file, and takes --nats over its URL", () => {
    const file = path.join(dir, "sessionbridge.yaml");
    writeFileSync(
      file,
      [
        "listeners:",
        "  nats:",
        "    url: nats://127.0.0.1:7422",
        "    prefix: bridge.a",
        "    user: u",
        "    password: p",
        "    nkeyFile: keys/b.nk",
        "    tls: { caFile: tls/ca.pem }",
        "store: memory",
        "",
      ].join("\n"),
    );
    const config = loadConfig({ file, cwd: dir });
    expect(config.listeners.nats).to.deep.include({
      url: "nats://127.0.0.1:7422",
      prefix: "bridge.a",
      queue: "sessionbridge",
      user: "u",
      password: "p",
      nkeyFile: path.join(dir, "keys/b.nk"),
    });
    expect(config.listeners.nats?.tls?.caFile).to.equal(path.join(dir, "tls/ca.pem"));
    const overridden = loadConfig({ file, cwd: dir, overrides: { nats: "nats://127.0.0.1:7999" } });
    expect(overridden.listeners.nats?.url).to.equal("nats://127.0.0.1:7999");
    expect(overridden.listeners.nats?.prefix).to.equal("bridge.a");
    expect(loadConfig({ cwd: dir, file, overrides: {} }).listeners.grpc).to.be.a("string");
  });

  it("rejects a bad URL, prefix or queue with the file position, and a bad --nats", () => {
    const file = path.join(dir, "bad.yaml");
    writeFileSync(
      file,
      ["listeners:", "  nats:", "    url: http://x:1", "    prefix: sb.*", "    queue: a b", ""].join("\n"),
    );
    let problems: string[] = [];
    try {
      loadConfig({ file, cwd: dir });
    } catch (error) {
      expect(error).to.be.instanceOf(ConfigError);
      problems = (error as ConfigError).problems.map(formatConfigProblem);
    }
    expect(problems.join("\n")).to.include("listeners.nats.url: not a NATS URL");
    expect(problems.join("\n")).to.include("listeners.nats.prefix: invalid subject prefix");
    expect(problems.join("\n")).to.include("listeners.nats.queue: invalid queue group");
    let bad: string[] = [];
    try {
      loadConfig({ cwd: dir, overrides: { nats: "127.0.0.1:4" } });
    } catch (error) {
      bad = (error as ConfigError).problems.map(formatConfigProblem);
    }
    expect(bad.join("\n")).to.include("--nats: not a NATS URL");
  });
});

/** A CA and a server certificate for 127.0.0.1, made with openssl. */
async function makeCertificates(dir: string): Promise<void> {
  const { mkdirSync } = await import("node:fs");
  mkdirSync(dir, { recursive: true });
  const at = (name: string) => path.join(dir, name);
  const ssl = (args: string[]) => run("openssl", args, { timeout: 30_000 });
  await ssl([
    "req",
    "-x509",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-days",
    "2",
    "-subj",
    "/CN=test-ca",
    "-keyout",
    at("ca.key"),
    "-out",
    at("ca.pem"),
  ]);
  await ssl([
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-subj",
    "/CN=127.0.0.1",
    "-keyout",
    at("server.key"),
    "-out",
    at("server.csr"),
  ]);
  writeFileSync(at("ext.cnf"), "subjectAltName=IP:127.0.0.1,DNS:localhost\n");
  await ssl([
    "x509",
    "-req",
    "-in",
    at("server.csr"),
    "-CA",
    at("ca.pem"),
    "-CAkey",
    at("ca.key"),
    "-CAcreateserial",
    "-days",
    "2",
    "-extfile",
    at("ext.cnf"),
    "-out",
    at("server.pem"),
  ]);
}
