import { type NatsClusterFixture, startNatsCluster } from "../../support/nats-cluster.js";
import { type NatsServerFixture, startNatsServer } from "../../support/nats-server.js";
import { openJetStreamStore } from "./jetstream-fixture.js";
import { describeSessionStore } from "./session-store.suite.js";

describe("JetStream store on one server (R1)", function () {
  this.timeout(60_000);
  let server: NatsServerFixture;

  before(async () => {
    server = await startNatsServer({ jetstream: true });
  });

  after(async () => {
    await server?.stop();
  });

  describeSessionStore("jetstream R1", () => openJetStreamStore([server.url], 1));
});

describe("JetStream store on a three-node cluster (R3)", function () {
  this.timeout(120_000);
  let cluster: NatsClusterFixture;

  before(async () => {
    cluster = await startNatsCluster(3);
  });

  after(async () => {
    await cluster?.stop();
  });

  describeSessionStore("jetstream R3", () => openJetStreamStore(cluster.urls, 3));
});
