import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { createInterface } from "node:readline";
import { promisify } from "node:util";
import { expect } from "chai";
import { repoRoot } from "../support/repo-root.js";
import { messageOf } from "./example-launcher.js";

const run = promisify(execFile);
const PATH = "/examples.inventory.v1.Inventory/Get";

/** Writes raw bytes on a fresh connection and resolves with everything the server sent before closing. */
function raw(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, "127.0.0.1");
    let received = "";
    socket.setEncoding("utf8");
    socket.on("data", (d: string) => {
      received += d;
    });
    socket.once("error", reject);
    // A server that waits for bytes that never come fails the test instead of hanging it.
    socket.setTimeout(20_000, () =>
      socket.destroy(new Error("no answer: the server is waiting for the body")),
    );
    socket.once("close", () => resolve(received));
    socket.write(request);
  });
}

/**
 * The Python inventory process on its own, as the bridge's HTTP outbound reaches it:
 * requests it cannot take get a Connect error and the process keeps serving.
 */
describe("the example's Python inventory process on malformed requests", function () {
  this.timeout(120_000);
  let dir: string;
  let child: ChildProcess;
  let port: number;

  before(async () => {
    await run("bash", ["examples/orders/python/build.sh"], { cwd: repoRoot() });
    dir = mkdtempSync(path.join(os.tmpdir(), "sb-inventory-"));
    child = spawn(
      path.join(repoRoot(), ".tools/examples/inventory-venv/bin/python"),
      ["examples/orders/python/inventory.py", "--listen", "127.0.0.1:0", "--db", path.join(dir, "i.db")],
      { cwd: repoRoot(), stdio: ["ignore", "pipe", "inherit"] },
    );
    port = await new Promise<number>((resolve, reject) => {
      createInterface({ input: child.stdout as NodeJS.ReadableStream }).on("line", (line) => {
        if (messageOf(line) === "inventory process ready")
          resolve((JSON.parse(line) as { port: number }).port);
      });
      child.once("exit", (code) => reject(new Error(`inventory exited (${code})`)));
    });
  });

  after(async () => {
    if (child?.exitCode === null) {
      child.kill("SIGTERM");
      await new Promise((r) => child.once("exit", r));
    }
    rmSync(dir, { recursive: true, force: true });
  });

  it("answers a negative or non-numeric Content-Length with 400 and closes, instead of waiting forever", async () => {
    for (const length of ["-5", "ten"]) {
      const answer = await raw(
        port,
        `POST ${PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ${length}\r\n\r\n{}`,
      );
      expect(answer).to.match(/^HTTP\/1\.[01] 400 /);
      expect(answer).to.include('"code": "invalid_argument"');
    }
  });

  it("refuses a body over its limit unread, a content type other than JSON, and malformed JSON", async () => {
    const big = await raw(
      port,
      `POST ${PATH} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000000\r\n\r\n`,
    );
    expect(big).to.match(/^HTTP\/1\.[01] 429 /);
    const url = `http://127.0.0.1:${port}${PATH}`;
    const proto = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/proto" },
      body: "",
    });
    expect(proto.status).to.equal(400);
    const broken = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{",
    });
    expect(broken.status).to.equal(400);
    expect(((await broken.json()) as { code: string }).code).to.equal("invalid_argument");
    // Still serving.
    const fine = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ orderId: "nope" }),
    });
    expect(fine.status).to.equal(404);
  });
});
