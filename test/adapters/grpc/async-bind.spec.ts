import assert from "node:assert/strict";
import { AsyncResource, executionAsyncId, executionAsyncResource } from "node:async_hooks";
import http2 from "node:http2";
import type { AddressInfo } from "node:net";
import { installLeanAsyncBind } from "../../../adapters/grpc/async-bind.js";

describe("AsyncResource#bind as the gRPC transport installs it", () => {
  before(() => installLeanAsyncBind());

  it("runs the function in the resource's scope with its this, arguments and length", () => {
    const resource = new AsyncResource("test");
    const seen: unknown[] = [];
    const fn = function (this: unknown, a: number, b: number) {
      seen.push(this, a, b, executionAsyncId(), executionAsyncResource());
      return a + b;
    };
    const bound = resource.bind(fn);
    const self = { name: "self" };
    assert.equal(bound.call(self, 2, 3), 5);
    assert.deepEqual(seen, [self, 2, 3, resource.asyncId(), resource]);
    assert.equal(bound.length, 2);

    const withThis = (resource.bind as (f: typeof fn, thisArg: unknown) => typeof fn)(fn, self);
    seen.length = 0;
    assert.equal(withThis.call({ other: true }, 4, 5), 9);
    assert.equal(seen[0], self);
    assert.equal(seen[3], resource.asyncId());
    assert.equal(withThis.length, 2);
  });

  it("keeps the deprecated asyncResource property, readable and replaceable", () => {
    const resource = new AsyncResource("test");
    const bound = resource.bind(() => undefined) as (() => undefined) & { asyncResource: unknown };
    const descriptor = Object.getOwnPropertyDescriptor(bound, "asyncResource");
    assert.equal(descriptor?.enumerable, true);
    assert.equal(bound.asyncResource, resource);
    const other = new AsyncResource("other");
    bound.asyncResource = other;
    assert.equal(bound.asyncResource, other);
    // Each bound function has its own.
    assert.equal((resource.bind(() => 1) as unknown as { asyncResource: unknown }).asyncResource, resource);
  });

  it("rejects what is not a function as Node does", () => {
    const resource = new AsyncResource("test");
    assert.throws(() => resource.bind(42 as never), { code: "ERR_INVALID_ARG_TYPE" });
  });

  it("is what node:http2 uses for each request, which still completes", async () => {
    const server = http2.createServer();
    server.on("stream", (stream) => {
      stream.respond({ ":status": 200 });
      stream.end("ok");
    });
    await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
    const client = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
    try {
      for (let i = 0; i < 3; i++) {
        const body = await new Promise<string>((resolve, reject) => {
          const request = client.request({ ":path": "/" });
          let text = "";
          request.setEncoding("utf8");
          request.on("data", (chunk: string) => {
            text += chunk;
          });
          request.on("end", () => resolve(text));
          request.on("error", reject);
          request.end();
        });
        assert.equal(body, "ok");
      }
    } finally {
      client.close();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
