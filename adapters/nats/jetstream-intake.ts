import { createHash } from "node:crypto";
import {
  AckPolicy,
  type ConsumerMessages,
  type JsMsg,
  jetstream,
  jetstreamManager,
} from "@nats-io/jetstream";
import type { NatsConnection } from "@nats-io/transport-node";
import { Header } from "../../bridge/call/metadata.js";
import type { NatsIntakeConfig } from "../../bridge/config/config.js";
import type { OperationContract } from "../../bridge/contracts/contract.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { Logger } from "../../bridge/logger.js";
import { metadataOf, NatsHeader } from "./nats-headers.js";
import { type InboundContext, serveUnary } from "./nats-inbound.js";

/** Messages fetched ahead of the one being journaled: a bounded buffer (robustness). */
const FETCH_AHEAD = 64;
/** Delay before JetStream redelivers a message the bridge could not take now. */
const RETRY_DELAY_MS = 1000;
/** Idempotency keys are at most 255 characters (S8); longer message ids are hashed. */
const MAX_KEY = 200;

/** A running durable intake: one durable consumer per configured one-way operation. */
export interface JetStreamIntake {
  /** Stops fetching, lets the message being journaled finish. */
  stop(): Promise<void>;
}

/**
 * Durable one-way intake (S9, S10): the bridge consumes a JetStream stream with a durable
 * consumer and acknowledges each message only once the bridge has journaled it, so a
 * publisher that never waits for a reply loses nothing when the bridge crashes: what was
 * not acknowledged is redelivered. Redeliveries are deduplicated through the bridge's
 * Idempotency-Key (S8): the message's own Idempotency-Key header, else its Nats-Msg-Id,
 * else its stream sequence. Messages are journaled one at a time in stream order, so
 * order within a session holds (S6). A message that can never be accepted (malformed,
 * no such session) is terminated and logged; one the bridge cannot take now is redelivered.
 */
export async function startJetStreamIntake(
  connection: NatsConnection,
  inbound: InboundContext,
  intakes: readonly NatsIntakeConfig[],
  logger: Logger,
): Promise<JetStreamIntake> {
  const manager = await jetstreamManager(connection);
  const js = jetstream(connection);
  const running: { messages: ConsumerMessages; done: Promise<void> }[] = [];
  try {
    for (const intake of intakes) {
      const op = operationOf(inbound, intake.operation);
      await manager.consumers.add(intake.stream, {
        durable_name: intake.durable,
        ack_policy: AckPolicy.Explicit,
        ...(intake.filterSubject === undefined ? {} : { filter_subject: intake.filterSubject }),
      });
      const consumer = await js.consumers.get(intake.stream, intake.durable);
      const messages = await consumer.consume({ max_messages: FETCH_AHEAD });
      const done = (async () => {
        for await (const msg of messages) await take(inbound, op, intake, msg, logger);
      })().catch((error: unknown) => {
        logger.error({ stream: intake.stream, error: String(error) }, "JetStream intake stopped");
      });
      running.push({ messages, done });
    }
  } catch (error) {
    for (const r of running) r.messages.stop();
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_CONFIG,
      `JetStream intake: ${error instanceof Error ? error.message : String(error)}`,
      { cause: error },
    );
  }
  return {
    async stop() {
      for (const r of running) r.messages.stop();
      await Promise.allSettled(running.map((r) => r.done));
    },
  };
}

function operationOf(inbound: InboundContext, name: string): OperationContract {
  const dot = name.lastIndexOf(".");
  const op = inbound.listener.contracts.operations.get(`/${name.slice(0, dot)}/${name.slice(dot + 1)}`);
  if (op === undefined || !op.oneWay || op.requestStream || op.responseStream) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_CONFIG,
      `JetStream intake: ${name} is not a served one-way operation`,
    );
  }
  return op;
}

async function take(
  inbound: InboundContext,
  op: OperationContract,
  intake: NatsIntakeConfig,
  msg: JsMsg,
  logger: Logger,
): Promise<void> {
  const received = metadataOf(msg.headers);
  const key = intakeKey(received, intake.stream, msg.seq);
  try {
    await serveUnary(
      inbound,
      op,
      { data: msg.data, headers: msg.headers },
      {
        [Header.idempotencyKey]: [key],
      },
    );
    // S9: acknowledged to JetStream only now that the bridge has journaled it.
    msg.ack();
  } catch (failure) {
    const error = BridgeError.from(failure);
    if (retryable(error.code)) {
      msg.nak(RETRY_DELAY_MS);
      return;
    }
    logger.warn(
      { stream: intake.stream, seq: msg.seq, code: error.code, reason: error.reason, message: error.message },
      "JetStream intake refused a message for good",
    );
    msg.term(error.reason);
  }
}

/** S8: the same stored message always carries the same key, however often it is redelivered. */
function intakeKey(received: Record<string, string[]>, stream: string, seq: number): string {
  const own = received[Header.idempotencyKey]?.[0];
  if (own !== undefined) return own;
  const msgId = received[NatsHeader.msgId]?.[0];
  const raw = msgId === undefined ? `js:${stream}:${seq}` : `nats-msg-id:${msgId}`;
  if (raw.length <= MAX_KEY && /^[\x20-\x7e]+$/.test(raw)) return raw;
  return `sha256:${createHash("sha256").update(raw).digest("hex")}`;
}

/** Faults that may pass: the message is redelivered later rather than dropped. */
function retryable(code: Code): boolean {
  return (
    code === Code.UNAVAILABLE ||
    code === Code.RESOURCE_EXHAUSTED ||
    code === Code.DEADLINE_EXCEEDED ||
    code === Code.ABORTED ||
    code === Code.INTERNAL ||
    code === Code.UNKNOWN ||
    code === Code.CANCELLED
  );
}
