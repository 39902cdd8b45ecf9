import { Validator } from "@seriousme/openapi-schema-validator";
import { expect } from "chai";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";

describe("HTTP inbound: /openapi.json", function () {
  this.timeout(30_000);
  let harness: LabHarness;
  let document: Record<string, unknown>;

  before(async () => {
    harness = await startLabHarness("memory", {
      adjust: (config) => ({ ...config, listeners: { ...config.listeners, http: "127.0.0.1:0" } }),
    });
    const response = await fetch(`http://${harness.runtime.http?.address}/openapi.json`);
    expect(response.status).to.equal(200);
    document = (await response.json()) as Record<string, unknown>;
  });
  after(() => harness?.close());

  it("validates as OpenAPI 3.1 (and the validator rejects a broken copy)", async () => {
    const result = await new Validator().validate(structuredClone(document));
    expect(result.errors, JSON.stringify(result.errors)).to.equal(undefined);
    expect(result.valid).to.equal(true);
    const broken = structuredClone(document) as { paths: Record<string, { post?: { responses?: unknown } }> };
    const first = Object.values(broken.paths)[0];
    if (first?.post !== undefined) first.post.responses = "none";
    expect((await new Validator().validate(broken)).valid).to.equal(false);
  });

  it("describes every operation callable over HTTP with its proto3 JSON schemas, the session headers and the error body", () => {
    const paths = document.paths as Record<string, Record<string, unknown>>;
    for (const op of harness.runtime.bridge.contracts.operations.values()) {
      if (op.requestStream) expect(paths[op.path], op.path).to.equal(undefined);
      else expect(paths[op.path], op.path).to.have.property("post");
      if (op.access === "shared" && !op.responseStream) expect(paths[op.path]).to.have.property("get");
    }
    expect(paths).to.have.keys(
      ...Object.keys(paths).filter((p) => !p.startsWith("/sessions")),
      "/sessions",
      "/sessions/{id}",
      "/sessions/{id}/events",
    );
    const components = document.components as {
      schemas: Record<string, { properties?: Record<string, unknown> }>;
      parameters: Record<string, { name: string }>;
    };
    expect(components.schemas["test.lab.v1.Op"]?.properties).to.include.keys("key", "failCode", "delayMs");
    expect(components.schemas["test.lab.v1.Result"]?.properties?.deadlineMs).to.deep.equal({
      type: ["string", "integer"],
      pattern: "^-?[0-9]+$",
    });
    expect(components.schemas).to.have.property("connect.Error");
    expect(Object.values(components.parameters).map((p) => p.name)).to.include.members([
      "Sb-Session-Id",
      "Sb-Seq",
      "Idempotency-Key",
      "traceparent",
      "Connect-Timeout-Ms",
    ]);
  });
});
