import { execFile } from "node:child_process";
import { readFileSync } from "node:fs";
import path from "node:path";
import { promisify } from "node:util";
import { expect } from "chai";
import { repoRoot } from "../support/repo-root.js";
import { type LaunchedExample, launchExample } from "./example-launcher.js";

const run = promisify(execFile);
const MARKER = "<!-- walkthrough: every line below is run";

/** The README's walkthrough block: its first ```bash block after the marker. */
function walkthroughLines(): string[] {
  const readme = readFileSync(path.join(repoRoot(), "README.md"), "utf8");
  const at = readme.indexOf(MARKER);
  if (at === -1) throw new Error("README.md has no walkthrough marker");
  const block = /```bash\n([\s\S]*?)```/.exec(readme.slice(at));
  if (block === null) throw new Error("no bash block after the walkthrough marker");
  return (block[1] ?? "").split("\n");
}

/**
 * The README's addresses, moved to the ports this run picked: the walkthrough is written
 * for npm start's defaults, and those ports may be taken on a shared machine.
 */
function relocate(line: string, example: LaunchedExample): string {
  const a = example.addresses;
  return line
    .replaceAll("127.0.0.1:50051", a.grpc)
    .replaceAll("127.0.0.1:8080", a.http)
    .replaceAll("nats://127.0.0.1:4222", `nats://127.0.0.1:${a.natsPort}`);
}

interface Step {
  readonly command: string;
  readonly stdout: string;
  readonly stderr: string;
  readonly code: number;
}

/** The JSON object a command printed (grpcurl and the nats CLI print one, curl -i after its headers). */
function jsonOf(step: Step): Record<string, unknown> {
  const text = step.stdout.slice(step.stdout.indexOf("{"));
  return JSON.parse(text.slice(0, text.lastIndexOf("}") + 1)) as Record<string, unknown>;
}

/**
 * Every line of the README's walkthrough, run in order with bash against npm start, and
 * what each one must show. Assignment lines (`G=…`) are carried into every later command,
 * as they would be in the reader's shell.
 */
describe("the README walkthrough: one order across TypeScript/gRPC, Python/HTTP and Go/NATS", function () {
  this.timeout(300_000);
  let example: LaunchedExample;
  const steps: Step[] = [];

  before(async () => {
    example = await launchExample();
    const prelude: string[] = [];
    for (const raw of walkthroughLines()) {
      const line = relocate(raw, example).trim();
      if (line === "" || line.startsWith("#")) continue;
      if (/^[A-Z]+=/.test(line)) {
        prelude.push(line);
        continue;
      }
      const script = [...prelude, line].join("\n");
      try {
        const { stdout, stderr } = await run("bash", ["-c", script], { cwd: repoRoot() });
        steps.push({ command: line, stdout, stderr, code: 0 });
      } catch (error) {
        const e = error as { stdout?: string; stderr?: string; code?: number };
        steps.push({ command: line, stdout: e.stdout ?? "", stderr: e.stderr ?? "", code: e.code ?? -1 });
      }
    }
  });

  after(async () => {
    await example?.stop();
  });

  /** The one step whose command includes every fragment. */
  function step(...fragments: string[]): Step {
    const found = steps.filter((s) => fragments.every((f) => s.command.includes(f)));
    expect(found, `one walkthrough command with ${fragments.join(" … ")}`).to.have.length(1);
    return found[0] as Step;
  }

  it("starts from examples/orders/sessionbridge.yaml, which names the three processes", async () => {
    // npm start on its default ports runs the bridge on this file as it is.
    const { stdout } = await run(
      process.execPath,
      ["dist/cli/main.js", "validate", "--config", "examples/orders/sessionbridge.yaml"],
      { cwd: repoRoot() },
    );
    expect(stdout).to.include("3 service(s), 13 operation(s), 3 process(es)");
  });

  it("runs every command of the walkthrough, each exiting 0", () => {
    expect(steps.length).to.equal(14);
    for (const s of steps) expect(s.code, `${s.command}\n${s.stderr}`).to.equal(0);
  });

  it("opens and fills the order in the TypeScript process over gRPC", () => {
    expect(jsonOf(step("Orders/Open"))).to.deep.equal({ orderId: "A-7", customer: "ada" });
    expect(jsonOf(step("Orders/AddItem"))).to.include({ orderId: "A-7", totalQty: 2 });
  });

  it("reserves stock in the Python process over HTTP, with its own faults and one-way releases", () => {
    const reserve = step("Inventory/Reserve", '"qty":2');
    expect(reserve.stdout).to.match(/^HTTP\/1\.1 200 /);
    expect(reserve.stdout).to.match(/^sb-session-id: [A-Za-z0-9_-]{22}\r?$/m);
    expect(jsonOf(reserve)).to.deep.equal({
      orderId: "A-7",
      lines: [{ sku: "tea", qty: 2, inStock: 98 }],
    });
    const refused = jsonOf(step("Inventory/Reserve", '"qty":500')) as {
      code: string;
      message: string;
      details: { type: string; value: string }[];
    };
    expect(refused.code).to.equal("failed_precondition");
    expect(refused.message).to.equal("only 98 tea left, 500 asked");
    // S14: the process's own ErrorInfo passes through unchanged.
    const info = refused.details.find((d) => d.type === "google.rpc.ErrorInfo");
    expect(Buffer.from(info?.value ?? "", "base64").toString("latin1")).to.include("OUT_OF_STOCK");
    expect(jsonOf(step("Inventory/Release"))).to.deep.equal({});
    // Get is shared but never overtakes the one-way Release queued before it (S6).
    expect(jsonOf(step("Inventory/Get"))).to.deep.equal({
      orderId: "A-7",
      lines: [{ sku: "tea", qty: 1, inStock: 99 }],
    });
  });

  it("charges in the Go process over NATS, and reaches it from gRPC too", () => {
    const charge = step("Payments.Charge");
    expect(jsonOf(charge)).to.deep.equal({ orderId: "A-7", chargedCents: 1250 });
    expect(charge.stderr).to.match(/sb-session-id: [A-Za-z0-9_-]{22}/);
    expect(jsonOf(step("Payments.Refund"))).to.deep.equal({});
    expect(jsonOf(step("Payments/Get"))).to.deep.equal({
      orderId: "A-7",
      chargedCents: 1250,
      refundedCents: 250,
    });
  });

  it("shows one order as three sessions, one per service, all correlated by order_id", () => {
    const active = step("sessions list", "--state active").stdout.split("\n").slice(1).filter(Boolean);
    expect(active).to.have.length(3);
    const services = active.map((l) => l.split(/\s+/)[1]);
    expect(services).to.have.members([
      "examples.orders.v1.Orders",
      "examples.inventory.v1.Inventory",
      "examples.payments.v1.Payments",
    ]);
    for (const l of active) expect(l).to.match(/\sactive\s+order_id=A-7\s/);
    expect(new Set(active.map((l) => l.split(/\s+/)[0])).size).to.equal(3);
    // The inventory session is the one whose id curl -i showed.
    const inventoryId = /^sb-session-id: (\S+)\r?$/m.exec(step("Inventory/Reserve", '"qty":2').stdout)?.[1];
    expect(active.find((l) => l.includes("Inventory"))?.split(/\s+/)[0]).to.equal(inventoryId);
  });

  it("ends each session with its own end operation", () => {
    expect(jsonOf(step("Inventory/Commit"))).to.include({ orderId: "A-7", committed: true });
    expect(jsonOf(step("Payments.Capture"))).to.deep.equal({
      orderId: "A-7",
      chargedCents: 1250,
      refundedCents: 250,
      captured: true,
    });
    expect(jsonOf(step("Orders/Checkout"))).to.include({ orderId: "A-7", totalQty: 2 });
    const closed = step("sessions list", "--state closed").stdout.split("\n").slice(1).filter(Boolean);
    expect(closed).to.have.length(3);
    for (const l of closed) expect(l).to.match(/\sclosed\s+order_id=A-7\s/);
  });
});
