import { expect } from "chai";
import {
  checkListenAddress,
  checkLocation,
  LOCATION_SCHEMES,
  parseHostPort,
} from "../../../bridge/config/addresses.js";

describe("addresses", () => {
  it("parses host names, IPv4 and bracketed IPv6 with ports 0-65535", () => {
    expect(parseHostPort("localhost:0")).to.deep.equal({ host: "localhost", port: 0 });
    expect(parseHostPort("10.0.0.1:65535")).to.deep.equal({ host: "10.0.0.1", port: 65535 });
    expect(parseHostPort("[::1]:50051")).to.deep.equal({ host: "::1", port: 50051 });
    expect(parseHostPort("[fe80::1%eth0]:80")).to.deep.equal({ host: "fe80::1%eth0", port: 80 });
    expect(parseHostPort("svc-1.internal.example:443")).to.deep.equal({
      host: "svc-1.internal.example",
      port: 443,
    });
  });

  it("says what is wrong with an address", () => {
    expect(parseHostPort("localhost")).to.deep.equal({ problem: "not a host:port address" });
    expect(parseHostPort("::1:50051")).to.deep.equal({ problem: "IPv6 address not in brackets" });
    expect(parseHostPort("[::1]")).to.deep.equal({ problem: "not a host:port address" });
    expect(parseHostPort("[nonsense]:1")).to.deep.equal({ problem: "invalid host" });
    expect(parseHostPort("300.1.1.1:1")).to.deep.equal({ problem: "invalid host" });
    expect(parseHostPort("-bad-:1")).to.deep.equal({ problem: "invalid host" });
    expect(parseHostPort(":50051")).to.deep.equal({ problem: "invalid host" });
    expect(parseHostPort("host:65536")).to.deep.equal({ problem: "invalid port" });
    expect(parseHostPort("host:-1")).to.deep.equal({ problem: "invalid port" });
    expect(parseHostPort("host:http")).to.deep.equal({ problem: "invalid port" });
    expect(parseHostPort("host:0", 1)).to.deep.equal({ problem: "invalid port" });
    expect(checkListenAddress("127.0.0.1:50051")).to.equal(undefined);
  });

  it("accepts grpc://host:port, http://host:port[/prefix] and nats://subject.prefix locations and names the accepted forms otherwise", () => {
    expect(Object.keys(LOCATION_SCHEMES)).to.deep.equal(["grpc", "http", "nats"]);
    expect(checkLocation("http://127.0.0.1:8081")).to.equal(undefined);
    expect(checkLocation("http://127.0.0.1:8081/api/v1?codec=json")).to.equal(undefined);
    expect(checkLocation("http://127.0.0.1:0")).to.equal(
      'invalid port (expected http://host:port[/prefix][?codec=json|proto], got "http://127.0.0.1:0")',
    );
    expect(checkLocation("http://h:1/p?codec=xml")).to.equal(
      'not host:port, an optional /prefix and an optional ?codec=json|proto (expected http://host:port[/prefix][?codec=json|proto], got "http://h:1/p?codec=xml")',
    );
    expect(checkLocation("grpc://127.0.0.1:50061")).to.equal(undefined);
    expect(checkLocation("grpc://[::1]:1")).to.equal(undefined);
    expect(checkLocation("nats://orders")).to.equal(undefined);
    expect(checkLocation("nats://orders.v1_x-y")).to.equal(undefined);
    // docs/nats.md: ?codec=json sends protobuf JSON to a process that speaks only JSON.
    expect(checkLocation("nats://orders.v1?codec=json")).to.equal(undefined);
    expect(checkLocation("nats://orders.v1?codec=proto")).to.equal(undefined);
    expect(checkLocation("nats://orders.v1?codec=xml")).to.equal(
      'invalid subject prefix (expected nats://subject.prefix, got "nats://orders.v1?codec=xml")',
    );
    expect(checkLocation("nats://orders.*")).to.equal(
      'invalid subject prefix (expected nats://subject.prefix, got "nats://orders.*")',
    );
    expect(checkLocation("nats://orders..v1")).to.equal(
      'invalid subject prefix (expected nats://subject.prefix, got "nats://orders..v1")',
    );
    expect(checkLocation("ws://x:1")).to.equal(
      'unsupported location scheme ws (expected grpc://host:port or http://host:port[/prefix][?codec=json|proto] or nats://subject.prefix, got "ws://x:1")',
    );
    expect(checkLocation("grpc://host:1/path")).to.equal(
      'invalid port (expected grpc://host:port, got "grpc://host:1/path")',
    );
    expect(checkLocation("host:1")).to.equal(
      'not a location URL (expected grpc://host:port or http://host:port[/prefix][?codec=json|proto] or nats://subject.prefix, got "host:1")',
    );
  });
});
