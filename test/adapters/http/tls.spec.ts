import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http2 from "node:http2";
import https from "node:https";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import type { DescService } from "@bufbuild/protobuf";
import { type CallOptions, createClient } from "@connectrpc/connect";
import { createConnectTransport } from "@connectrpc/connect-node";
import { expect } from "chai";
import { loadConfig } from "../../../bridge/config/load-config.js";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";

type LabOp = { key: string; text?: string; count?: number };
interface LabResult {
  readonly key: string;
  readonly sessionId: string;
  readonly log: string[];
}
interface CounterClient {
  start(op: LabOp, options?: CallOptions): Promise<LabResult>;
  do(op: LabOp, options?: CallOptions): Promise<LabResult>;
  watch(op: LabOp, options?: CallOptions): AsyncIterable<LabResult>;
}

/** A self-signed certificate for 127.0.0.1, made by openssl for this run only. */
function selfSigned(dir: string): { certFile: string; keyFile: string; cert: Buffer } {
  const certFile = path.join(dir, "cert.pem");
  const keyFile = path.join(dir, "key.pem");
  execFileSync(
    "openssl",
    [
      "req",
      "-x509",
      "-newkey",
      "ec",
      "-pkeyopt",
      "ec_paramgen_curve:prime256v1",
      "-nodes",
      "-keyout",
      keyFile,
      "-out",
      certFile,
      "-days",
      "1",
      "-subj",
      "/CN=127.0.0.1",
      "-addext",
      "subjectAltName=IP:127.0.0.1",
    ],
    { stdio: "ignore" },
  );
  return { certFile, keyFile, cert: readFileSync(certFile) };
}

/** One POST over HTTPS/1.1 trusting `ca`: status, headers and body. */
function httpsPost(
  address: string,
  pathname: string,
  body: object,
  ca: Buffer,
): Promise<{ status: number; setCookie: string[]; alpn: string | false; body: string }> {
  const [host, port] = address.split(":") as [string, string];
  return new Promise((resolve, reject) => {
    const request = https.request(
      {
        host,
        port: Number(port),
        path: pathname,
        method: "POST",
        headers: { "content-type": "application/json" },
        agent: new https.Agent({ ca, ALPNProtocols: ["http/1.1"] }),
      },
      (response) => {
        const chunks: Buffer[] = [];
        response.on("data", (c: Buffer) => chunks.push(c));
        response.on("end", () =>
          resolve({
            status: response.statusCode ?? 0,
            setCookie: response.headers["set-cookie"] ?? [],
            alpn: (response.socket as import("node:tls").TLSSocket).alpnProtocol ?? false,
            body: Buffer.concat(chunks).toString("utf8"),
          }),
        );
      },
    );
    request.on("error", reject);
    request.end(JSON.stringify(body));
  });
}

describe("HTTP inbound over TLS: HTTP/1.1 and h2 by ALPN on one port, Secure cookies", function () {
  this.timeout(30_000);
  let dir: string;
  let tls: { certFile: string; keyFile: string; cert: Buffer };
  let harness: LabHarness;
  let counter: DescService;
  let address: string;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "sb-http-tls-"));
    tls = selfSigned(dir);
    harness = await startLabHarness("memory", {
      adjust: (config) => ({
        ...config,
        listeners: {
          ...config.listeners,
          http: "127.0.0.1:0",
          httpTls: { certFile: tls.certFile, keyFile: tls.keyFile },
          httpCookies: [
            { name: "sb_session", bind: "session" },
            { name: "lab_key", bind: "key" },
          ],
        },
      }),
    });
    address = harness.runtime.http?.address as string;
    const found = harness.runtime.bridge.contracts.registry.getService("test.lab.v1.Counter");
    if (found === undefined) throw new Error("no test.lab.v1.Counter in the contracts");
    counter = found;
  });
  after(async () => {
    await harness?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  for (const variant of [
    { httpVersion: "1.1" as const, useBinaryFormat: false },
    { httpVersion: "2" as const, useBinaryFormat: true },
  ]) {
    it(`a Connect client over HTTPS/${variant.httpVersion} (${variant.useBinaryFormat ? "proto" : "JSON"}): unary calls and a server stream of one session (S1)`, async () => {
      const transport = createConnectTransport({
        baseUrl: `https://${address}`,
        ...variant,
        nodeOptions: { ca: tls.cert },
      });
      const client = createClient(counter, transport) as unknown as CounterClient;
      const key = `tls-${variant.httpVersion}`;
      const started = await client.start({ key, text: "a" });
      expect(started.sessionId).to.be.a("string").and.not.equal("");
      const done = await client.do({ key, text: "b" });
      expect(done.sessionId).to.equal(started.sessionId);
      expect(done.log).to.deep.equal(["Start:a", "Do:b"]);
      const streamed: string[] = [];
      for await (const result of client.watch({ key, count: 3 })) streamed.push(result.sessionId);
      expect(streamed).to.deep.equal([started.sessionId, started.sessionId, started.sessionId]);
    });
  }

  it("answers over TLS set the bound cookies with Secure (and HttpOnly, SameSite), over HTTP/1.1 and h2", async () => {
    const h1 = await httpsPost(address, "/test.lab.v1.Counter/Start", { key: "tls-cookie-1" }, tls.cert);
    expect(h1.status).to.equal(200);
    expect(h1.alpn).to.equal("http/1.1");
    const id = (JSON.parse(h1.body) as { sessionId: string }).sessionId;
    expect(h1.setCookie).to.include(`sb_session=${id}; Path=/; HttpOnly; SameSite=Lax; Secure`);
    expect(h1.setCookie).to.include("lab_key=tls-cookie-1; Path=/; HttpOnly; SameSite=Lax; Secure");

    const session = http2.connect(`https://${address}`, { ca: tls.cert });
    try {
      const headers = await new Promise<http2.IncomingHttpHeaders>((resolve, reject) => {
        const stream = session.request({
          ":method": "POST",
          ":path": "/test.lab.v1.Counter/Start",
          "content-type": "application/json",
        });
        stream.on("response", resolve);
        stream.on("error", reject);
        stream.resume();
        stream.end(JSON.stringify({ key: "tls-cookie-2" }));
      });
      expect(headers[":status"]).to.equal(200);
      expect(session.alpnProtocol).to.equal("h2");
      const cookies = headers["set-cookie"] ?? [];
      expect(cookies).to.include("lab_key=tls-cookie-2; Path=/; HttpOnly; SameSite=Lax; Secure");
    } finally {
      session.close();
    }
  });

  it("a cleartext client on the TLS port is turned away without harm: the port keeps serving", async () => {
    const [host, port] = address.split(":") as [string, string];
    const closed = await new Promise<string>((resolve) => {
      const socket = net.connect(Number(port), host, () => {
        socket.write("POST /test.lab.v1.Counter/Start HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}");
      });
      let got = "";
      socket.on("data", (chunk: Buffer) => {
        got += chunk.toString("latin1");
      });
      socket.on("error", () => undefined);
      socket.on("close", () => resolve(got));
    });
    // Whatever TLS answers (an alert, or nothing), never an HTTP answer in the clear.
    expect(closed).to.not.match(/^HTTP\//);
    const after = await httpsPost(address, "/test.lab.v1.Counter/Start", { key: "tls-after" }, tls.cert);
    expect(after.status).to.equal(200);
  });

  it("an unusable certificate or key is a configuration error at start, naming the file", async () => {
    const bogus = path.join(dir, "bogus.pem");
    writeFileSync(bogus, "not a pem file\n");
    const failed = await startLabHarness("memory", {
      adjust: (config) => ({
        ...config,
        listeners: {
          ...config.listeners,
          http: "127.0.0.1:0",
          httpTls: { certFile: bogus, keyFile: tls.keyFile },
        },
      }),
    }).then(
      async (h) => {
        await h.close();
        return undefined;
      },
      (error: unknown) => error,
    );
    expect(String((failed as Error | undefined)?.message)).to.include("bogus.pem");
  });

  it("--http-tls-cert and --http-tls-key come together, and the file's httpTls is relative to the file", () => {
    const config = path.join(dir, "sessionbridge.yaml");
    writeFileSync(
      config,
      "listeners:\n  http: 127.0.0.1:0\n  httpTls: { certFile: cert.pem, keyFile: key.pem }\nstore: memory\n",
    );
    const loaded = loadConfig({ file: config });
    expect(loaded.listeners.httpTls).to.deep.equal({ certFile: tls.certFile, keyFile: tls.keyFile });
    const overridden = loadConfig({
      file: config,
      cwd: "/",
      overrides: { httpTlsCert: "tmp/c.pem", httpTlsKey: "tmp/k.pem" },
    });
    expect(overridden.listeners.httpTls).to.deep.equal({ certFile: "/tmp/c.pem", keyFile: "/tmp/k.pem" });
    expect(() => loadConfig({ file: config, overrides: { httpTlsCert: "c.pem" } })).to.throw(
      /--http-tls-cert needs --http-tls-key/,
    );
  });
});
