import { status as Status } from "@grpc/grpc-js";
import type { LabReply } from "../../sdk/gen/sessionbridge/conformance/v1/lab.js";
import { sleep } from "../support/wait.js";
import type { LabClients } from "./java-lab-process.js";
import { act, endedAtDeadline, fault, open, session, unary } from "./lab-call.js";

/**
 * One check per rule a Java faulty service may break, each answering whether the service
 * kept the rule. The faulty spec runs every probe against every service: the reference
 * keeps all of them, each faulty service breaks exactly its own.
 */
export interface Probe {
  readonly rule: string;
  readonly name: string;
  /** Options the service must be started with for this probe (expiry needs a fast clock). */
  readonly timeScale: number;
  keeps(clients: LabClients, id: string): Promise<boolean>;
}

/** 600000 ms x 0.0005: sessions expire after 300 ms of idleness. */
const FAST = 0.0005;

export const PROBES: readonly Probe[] = [
  {
    rule: "S12",
    name: "expiry",
    timeScale: FAST,
    async keeps(c, id) {
      await unary(c.lab, "open", open("t", id), session(id));
      // Five idle timeouts without a message: long past expiry for a service keeping S12.
      await sleep(1500);
      try {
        await unary(c.lab, "peek", act(), session(id));
        return false;
      } catch (e) {
        const f = await fault(Promise.reject(e));
        return f.code === Status.NOT_FOUND && f.info?.reason === "SESSION_EXPIRED";
      }
    },
  },
  {
    rule: "S15",
    name: "metadata",
    timeScale: 1,
    async keeps(c, id) {
      await unary(c.lab, "open", open("t", id), session(id));
      const answer = await unary<LabReply>(
        c.lab,
        "act",
        act({ observe: true, replyHeaders: { "x-h": "hv" } }),
        session(id, { "x-custom": "v1" }),
      );
      return answer.reply.observed?.metadata["x-custom"] === "v1" && answer.headers.get("x-h")[0] === "hv";
    },
  },
  {
    rule: "S15",
    name: "deadline",
    timeScale: 1,
    async keeps(c, id) {
      await unary(c.lab, "open", open("t", id), session(id));
      const f = await fault(unary(c.lab, "act", act({ sleepMs: 1500, append: ["late"] }), session(id), 300));
      if (!endedAtDeadline(f.code)) return false;
      // Waits for the session: a service still sleeping holds it until its sleep ends.
      const peek = await unary<LabReply>(c.lab, "peek", act(), session(id));
      return peek.reply.log.length === 0;
    },
  },
];
