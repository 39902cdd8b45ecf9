import { mkdtempSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { expect } from "chai";
import { EnvelopeKind } from "../../sdk/gen/sessionbridge/v1/envelope.js";
import { SessionState } from "../../sdk/gen/sessionbridge/v1/session.js";
import { type BridgeProcess, startBridgeProcess } from "../support/bridge-process.js";
import type { LabClient } from "../support/lab-client.js";
import { writeLabConfig } from "../support/lab-config.js";
import { openLabClient } from "../support/lab-harness.js";
import { type LabProcess, startLabProcess } from "../support/lab-process.js";
import { sleep, waitFor } from "../support/wait.js";

const SESSIONS = 4;
const FIRES_PER_SESSION = 40;

interface Acked {
  readonly fires: { key: string; messageId: string }[];
  readonly dos: { key: string; seq: number; messageId: string; idempotencyKey: string; text: string }[];
}

/**
 * S10 for real: the bridge runs as its own process on SQLite, takes traffic, is killed
 * with SIGKILL mid-stream, and restarts on the same database. Nothing it acknowledged may
 * be lost; undelivered one-way messages are delivered, in order, with their original
 * message ids; sequence numbers and idempotency keys still answer from the record.
 */
describe("crash recovery (S10): SIGKILL mid-traffic, restart on the same SQLite database", function () {
  this.timeout(60_000);
  let dir: string;
  let lab: LabProcess;
  let bridge: BridgeProcess;
  let config: string;

  before(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), "sb-crash-"));
    lab = await startLabProcess();
    config = writeLabConfig(dir, lab.port, [
      "listeners:",
      "  grpc: 127.0.0.1:0",
      `store: sqlite:${path.join(dir, "sessions.db")}`,
      "defaults:",
      "  oneWay: { maxAttempts: 20, initialBackoffMs: 20, maxBackoffMs: 200, attemptTimeoutMs: 5000 }",
    ]);
  });

  after(async () => {
    bridge?.child.kill("SIGKILL");
    await lab?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it("loses nothing acknowledged and resumes where it stopped", async () => {
    bridge = await startBridgeProcess(["--config", config]);
    let client: LabClient = openLabClient("grpc-js", bridge.address);
    const keys = Array.from({ length: SESSIONS }, (_, i) => `crash-${i}`);
    const sessionIds = new Map<string, string>();
    for (const key of keys) {
      const out = await client.unary("Counter", "Start", { key });
      sessionIds.set(key, out.response.session_id);
    }

    // Traffic: per session, one-way notes the process handles slowly (so a backlog is
    // queued when the bridge dies) and numbered, idempotent calls.
    const acked: Acked = { fires: [], dos: [] };
    let stop = false;
    const fireLoop = async (key: string) => {
      // Bounded and paced: acknowledgements come at once, deliveries take 60 ms each, slower
      // than a busy machine acknowledges, so a backlog is queued when the bridge dies.
      for (let i = 0; !stop && i < FIRES_PER_SESSION; i++) {
        try {
          const out = await client.unary("Counter", "Fire", { key, text: `n${i}`, delay_ms: 60 });
          acked.fires.push({ key, messageId: out.messageId ?? "" });
          await sleep(2);
        } catch {
          return; // the bridge is gone
        }
      }
    };
    const doLoop = async (key: string) => {
      for (let seq = 1; !stop; seq++) {
        const idempotencyKey = `${key}-do-${seq}`;
        try {
          const out = await client.unary(
            "Counter",
            "Do",
            { key, text: `d${seq}` },
            { metadata: { "sb-seq": String(seq), "idempotency-key": idempotencyKey } },
          );
          acked.dos.push({ key, seq, messageId: out.response.message_id, idempotencyKey, text: `d${seq}` });
        } catch {
          return;
        }
      }
    };
    const traffic = keys.flatMap((key) => [fireLoop(key), doLoop(key)]);
    await waitFor(
      () => acked.fires.length >= 100 && acked.dos.length >= 8,
      20_000,
      "traffic before the crash",
    );
    bridge.child.kill("SIGKILL");
    stop = true;
    await Promise.all(traffic);
    await client.close();
    expect(await bridge.exited).to.equal("SIGKILL");
    // The first bridge's deliveries came on its own connections; the restarted one opens new ones.
    const firstBridge = new Set(lab.deliveries.map((d) => d.peer));
    const deliveredBefore = new Set(lab.deliveries.map((d) => d.messageId));
    const backlog = acked.fires.filter((f) => !deliveredBefore.has(f.messageId));
    // The test means something only if the crash left acknowledged notes undelivered.
    expect(backlog.length, "acknowledged one-way messages not yet delivered at the crash").to.be.greaterThan(
      0,
    );

    bridge = await startBridgeProcess(["--config", config]);
    client = openLabClient("grpc-js", bridge.address);
    const sessions = client.sessions;
    try {
      // Every acknowledged one-way message is delivered, with its original id.
      const deliveredIds = () =>
        new Set(lab.deliveries.filter((d) => d.method === "Fire").map((d) => d.messageId));
      await waitFor(
        () => acked.fires.every((f) => deliveredIds().has(f.messageId)),
        30_000,
        "redelivery of the backlog",
      ).catch((error: Error) => {
        const missing = acked.fires.filter((f) => !deliveredIds().has(f.messageId)).length;
        throw new Error(
          `${error.message}: ${missing} of ${acked.fires.length} acknowledged notes undelivered, backlog ${backlog.length}; bridge log: ${bridge.lines.join(" | ")}`,
        );
      });

      // Only messages in flight at the crash may arrive twice; the backlog arrives once.
      const fireDeliveries = lab.deliveries.filter((d) => d.method === "Fire");
      const byFirstBridge = new Set(
        fireDeliveries.filter((d) => firstBridge.has(d.peer)).map((d) => d.messageId),
      );
      for (const f of acked.fires.filter((a) => !byFirstBridge.has(a.messageId))) {
        expect(
          fireDeliveries.filter((d) => d.messageId === f.messageId),
          f.messageId,
        ).to.have.length(1);
      }
      for (const id of new Set(fireDeliveries.map((d) => d.messageId))) {
        const times = fireDeliveries.filter((d) => d.messageId === id);
        if (times.length > 1)
          expect(firstBridge.has(times[0]?.peer ?? ""), `${id} first delivered before the crash`).to.equal(
            true,
          );
      }

      for (const key of keys) {
        const sessionId = sessionIds.get(key) ?? "";
        // The session survived, with its correlation and sequence state.
        const session = await sessions.get(sessionId);
        expect(session.state).to.equal(SessionState.SESSION_STATE_ACTIVE);
        expect(session.correlation).to.deep.equal({ key });

        // One-way messages reached the process in the order they were acknowledged.
        const order = acked.fires.filter((f) => f.key === key).map((f) => f.messageId);
        const firstSeen: string[] = [];
        for (const d of fireDeliveries)
          if (d.key === key && !firstSeen.includes(d.messageId)) firstSeen.push(d.messageId);
        expect(firstSeen.slice(0, order.length)).to.deep.equal(order);

        // Each acknowledged note is in the journal once, with an outcome. The outcome is
        // recorded once the process has answered, a moment after it received the note.
        const readJournal = async () => {
          const entries: { kind: number; messageId: string; inReplyTo: string }[] = [];
          for await (const e of sessions.history({ sessionId })) {
            entries.push({
              kind: e.envelope?.kind ?? 0,
              messageId: e.envelope?.messageId ?? "",
              inReplyTo: e.envelope?.inReplyTo ?? "",
            });
          }
          return entries;
        };
        const acks = (entries: { kind: number; inReplyTo: string }[]) =>
          entries.filter((j) => j.kind === EnvelopeKind.ENVELOPE_KIND_ACK).length;
        await waitFor(async () => acks(await readJournal()) >= order.length, 10_000, `ACKs of ${key}`);
        const journal = await readJournal();
        for (const id of order) {
          expect(
            journal.filter((j) => j.kind === EnvelopeKind.ENVELOPE_KIND_ONE_WAY && j.messageId === id),
          ).to.have.length(1);
          expect(
            journal.some((j) => j.kind === EnvelopeKind.ENVELOPE_KIND_ACK && j.inReplyTo === id),
            `ACK of ${id}`,
          ).to.equal(true);
        }

        // Numbered calls: every acknowledged number replays its recorded outcome, delivered once.
        const dos = acked.dos.filter((d) => d.key === key);
        for (const done of dos) {
          // The replayed message's own deliveries: recovery may still be delivering other
          // messages (one-way backlog, calls in flight at the crash) while this loop runs.
          const doDeliveries = () =>
            lab.deliveries.filter((d) => d.method === "Do" && d.messageId === done.messageId).length;
          const before = doDeliveries();
          expect(before, `deliveries of acknowledged ${done.messageId}`).to.be.at.least(1);
          const again = await client.unary(
            "Counter",
            "Do",
            { key, text: done.text },
            { metadata: { "sb-seq": String(done.seq) } },
          );
          expect(again.response.message_id).to.equal(done.messageId);
          const byKey = await client.unary(
            "Counter",
            "Do",
            { key, text: done.text },
            { metadata: { "idempotency-key": done.idempotencyKey } },
          );
          expect(byKey.response.message_id).to.equal(done.messageId);
          expect(doDeliveries()).to.equal(before);
        }
        // The session takes the next number where it left off (a call in flight at the
        // crash may have taken one: it answers as a duplicate, redelivered once).
        const next = (dos.at(-1)?.seq ?? 0) + 1;
        const after = await client.unary(
          "Counter",
          "Do",
          { key, text: `d${next}` },
          { metadata: { "sb-seq": String(next) } },
        );
        expect(after.response.session_id).to.equal(sessionId);
      }
    } finally {
      await client.close();
      bridge.child.kill("SIGTERM");
      await Promise.race([bridge.exited, sleep(5000)]);
    }
  });
});
