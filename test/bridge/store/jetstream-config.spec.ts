import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { connect } from "@nats-io/transport-node";
import { expect } from "chai";
import { ConfigError, formatConfigProblem } from "../../../bridge/config/config-error.js";
import { loadConfig } from "../../../bridge/config/load-config.js";
import { Code } from "../../../bridge/errors/code.js";
import { Reason } from "../../../bridge/errors/reason.js";
import { createStore } from "../../../bridge/store/create-store.js";
import { type NatsServerFixture, startNatsServer } from "../../support/nats-server.js";
import { expectBridgeError } from "./expect-bridge-error.js";
import { session } from "./store-records.js";

describe("jetstream store configuration", function () {
  this.timeout(30_000);
  let dir: string;
  let server: NatsServerFixture;

  before(async () => {
    server = await startNatsServer({ jetstream: true });
  });

  after(async () => {
    await server?.stop();
  });

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), "sb-js-config-"));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  const fromYaml = (text: string) => {
    const file = path.join(dir, "bridge.yaml");
    writeFileSync(file, text);
    return loadConfig({ file, cwd: dir });
  };

  it("reads store: jetstream:PREFIX with its url and replicas, and defaults the prefix and replicas", () => {
    const config = fromYaml(
      "store: jetstream:orders\nstoreOptions: { url: nats://127.0.0.1:4999, replicas: 3 }\n",
    );
    expect(config.store).to.deep.equal({
      kind: "jetstream",
      prefix: "orders",
      url: "nats://127.0.0.1:4999",
      replicas: 3,
    });
    expect(loadConfig({ cwd: dir, overrides: { store: "jetstream" } }).store).to.deep.equal({
      kind: "jetstream",
      prefix: "sb",
      url: undefined,
      replicas: 1,
    });
  });

  it("refuses a prefix JetStream cannot name a stream with, and replicas below one", () => {
    try {
      fromYaml("store: jetstream:a.b\nstoreOptions: { replicas: 0 }\n");
      expect.fail("loading should fail");
    } catch (error) {
      expect(error).to.be.instanceOf(ConfigError);
      const problems = (error as ConfigError).problems.map(formatConfigProblem);
      expect(
        problems.some((p) => p.includes("store: unknown store") && p.includes('got "jetstream:a.b"')),
      ).to.equal(true);
      expect(problems.some((p) => p.includes("storeOptions.replicas"))).to.equal(true);
    }
  });

  it("opens on storeOptions.url, or on the bridge's NATS connection, and says when it has neither", async () => {
    const own = await createStore({ kind: "jetstream", prefix: "cfg1", url: server.url, replicas: 1 });
    await own.commit({ sessions: [session("s1")] });
    expect((await own.getSession("s1"))?.id).to.equal("s1");
    await own.close();

    const nc = await connect({ servers: server.url });
    try {
      const shared = await createStore(
        { kind: "jetstream", prefix: "cfg1", url: undefined, replicas: 1 },
        { natsConnection: nc },
      );
      expect((await shared.getSession("s1"))?.id, "same prefix, same data").to.equal("s1");
      await shared.close();
      expect(nc.isClosed(), "a connection the store did not open stays open").to.equal(false);
    } finally {
      await nc.close();
    }

    await expectBridgeError(
      createStore({ kind: "jetstream", prefix: "cfg2", url: undefined, replicas: 1 }),
      Code.FAILED_PRECONDITION,
      Reason.INVALID_CONFIG,
    );
  });
});
