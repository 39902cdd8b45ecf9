import { type Service, Svcm } from "@nats-io/services";
import type { NatsConnection } from "@nats-io/transport-node";
import { createJsonCodec } from "../../bridge/codec/json-codec.js";
import type { NatsConfig } from "../../bridge/config/config.js";
import type { OperationContract } from "../../bridge/contracts/contract.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { Listener, ListenerContext } from "../../bridge/listener/listener.js";
import type { JetStreamIntake } from "./jetstream-intake.js";
import { type InboundContext, respondFault, respondOk, serveUnary, wantsJson } from "./nats-inbound.js";
import { DEFAULT_STREAM_ACK_TIMEOUT_MS } from "./nats-stream.js";
import { type StreamServing, serveNatsStream } from "./nats-stream-inbound.js";

/** The name the bridge registers under with the NATS services API ($SRV.*). */
export const NATS_SERVICE_NAME = "sessionbridge";
const SERVICE_VERSION = "0.1.0";
/** Requests served at once by one listener; more are refused rather than queued without bound. */
const DEFAULT_MAX_INFLIGHT = 10_000;

export interface NatsListenerOptions {
  readonly connection: NatsConnection;
  readonly config: Pick<NatsConfig, "prefix" | "queue"> & Partial<Pick<NatsConfig, "intake">>;
  readonly maxInflight?: number;
  /**
   * How long a server stream with a full window waits for the requester's ack before it
   * is given up (RESOURCE_EXHAUSTED) and its call cancelled: a requester that vanished
   * holds at most one window of messages, for at most this long.
   */
  readonly streamAckTimeoutMs?: number;
}

export interface NatsListener extends Listener {
  /** The inbound subject of an operation: `<prefix>.<package.Service>.<Method>`. */
  subjectOf(op: OperationContract): string;
}

/** `<prefix>.<package.Service>.<Method>` (the subject scheme). */
export function inboundSubject(prefix: string, op: OperationContract): string {
  return `${prefix}.${op.service}.${op.name}`;
}

/**
 * The inbound NATS port: one services-API endpoint per operation of the configured
 * contracts, so `$SRV.PING|INFO|STATS` answer for `sessionbridge` and `nats micro info`
 * lists every operation with what it does; the endpoints share a queue group, so each
 * request reaches one replica. Request-response operations answer on the reply subject;
 * server-streaming operations answer there with the stream framing of nats-stream.ts;
 * operations that take a stream of requests are refused with UNIMPLEMENTED.
 */
export async function startNatsListener(
  context: ListenerContext,
  options: NatsListenerOptions,
): Promise<NatsListener> {
  const { connection, config } = options;
  const maxInflight = options.maxInflight ?? DEFAULT_MAX_INFLIGHT;
  const json = createJsonCodec(context.contracts, { maxInputBytes: context.maxPayloadBytes });
  const stopped = new AbortController();
  const inbound: InboundContext = { listener: context, json, signal: stopped.signal };
  const inflight = new Set<Promise<void>>();
  let accepting = true;
  const streaming: StreamServing = {
    context: inbound,
    connection,
    ackTimeoutMs: options.streamAckTimeoutMs ?? DEFAULT_STREAM_ACK_TIMEOUT_MS,
  };
  // Every promise observed: a reply that cannot be sent (connection gone) is dropped.
  const track = (work: Promise<void>): void => {
    const tracked = work.catch(() => undefined);
    inflight.add(tracked);
    void tracked.finally(() => inflight.delete(tracked));
  };

  const service: Service = await new Svcm(connection).add({
    name: NATS_SERVICE_NAME,
    version: SERVICE_VERSION,
    description: "sessionbridge: sessions for the configured contracts",
    queue: config.queue,
    metadata: { prefix: config.prefix },
  });
  for (const contract of context.contracts.services.values()) {
    for (const op of contract.operations) {
      service.addEndpoint(endpointName(op), {
        subject: inboundSubject(config.prefix, op),
        metadata: endpointMetadata(op),
        queue: config.queue,
        handler: (error, msg) => {
          if (error !== null) return;
          if (!accepting) {
            respondFault(
              msg,
              new BridgeError(Code.UNAVAILABLE, Reason.SHUTTING_DOWN, "the bridge is shutting down"),
            );
            return;
          }
          if (op.requestStream) {
            // A request stream needs framing from the client too; only server streams are carried.
            respondFault(
              msg,
              new BridgeError(
                Code.UNIMPLEMENTED,
                Reason.UNSUPPORTED_ON_STREAM,
                `${op.path} takes a stream of requests; NATS serves unary, one-way and server-streaming operations`,
              ),
            );
            return;
          }
          if (inflight.size >= maxInflight) {
            respondFault(
              msg,
              new BridgeError(
                Code.RESOURCE_EXHAUSTED,
                Reason.INVALID_REQUEST,
                "too many NATS requests in flight",
              ),
            );
            return;
          }
          if (op.responseStream) {
            if (msg.reply === undefined || msg.reply === "") {
              context.logger.warn(
                { subject: msg.subject },
                "NATS stream request without a reply subject was ignored",
              );
              return;
            }
            track(serveNatsStream(streaming, op, msg));
            return;
          }
          const work = (async () => {
            let asJson = false;
            try {
              asJson = wantsJson(msg);
              const reply = await serveUnary(inbound, op, msg);
              try {
                respondOk(msg, reply, asJson, op, json);
              } catch (failure) {
                // Accepted and answered by the process, but its reply cannot be sent in the
                // caller's form: the caller still gets an answer, never silence.
                const error = BridgeError.from(failure);
                throw new BridgeError(
                  Code.INTERNAL,
                  Reason.PROCESS_FAULT,
                  `the process's reply cannot be sent: ${error.message}`,
                  { cause: failure, metadata: sessionMetadata(reply.sessionId, reply.messageId) },
                );
              }
            } catch (failure) {
              const error = BridgeError.from(failure);
              if (msg.reply === undefined || msg.reply === "") {
                // A publish without a reply subject has nobody to tell: the fault is logged.
                context.logger.warn(
                  { subject: msg.subject, code: error.code, reason: error.reason, message: error.message },
                  "NATS message without a reply subject was refused",
                );
              }
              respondFault(msg, error);
            }
          })();
          track(work);
        },
      });
    }
  }

  let intake: JetStreamIntake | undefined;
  if (config.intake !== undefined && config.intake.length > 0) {
    try {
      // Loaded on demand: a listener without intake streams never holds the JetStream client's code.
      const { startJetStreamIntake } = await import("./jetstream-intake.js");
      intake = await startJetStreamIntake(connection, inbound, config.intake, context.logger);
    } catch (error) {
      await service.stop().catch(() => undefined);
      throw error;
    }
  }

  let draining: Promise<void> | undefined;
  const drain = (graceMs: number): Promise<void> => {
    draining ??= (async () => {
      accepting = false;
      // Unacknowledged intake messages stay in the stream for the next start (S10).
      await intake?.stop();
      // Unsubscribes the endpoints (the queue group's other members take new requests);
      // replies of calls in flight still go out on the open connection.
      await service.stop().catch(() => undefined);
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        Promise.allSettled([...inflight]),
        new Promise<void>((resolve) => {
          timer = setTimeout(resolve, graceMs);
          timer.unref();
        }),
      ]);
      if (timer !== undefined) clearTimeout(timer);
      stopped.abort();
    })();
    return draining;
  };
  return {
    transport: "nats",
    address: config.prefix,
    subjectOf: (op) => inboundSubject(config.prefix, op),
    drain,
    close: () => drain(0),
  };
}

/** The session facts a fault carries (S1), as BridgeError metadata. */
function sessionMetadata(
  sessionId: string | undefined,
  messageId: string | undefined,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (sessionId !== undefined) out.session_id = sessionId;
  if (messageId !== undefined) out.message_id = messageId;
  return out;
}

/** Endpoint names allow letters, digits, '-' and '_': the full method name with '.' and '/' as '_'. */
function endpointName(op: OperationContract): string {
  return `${op.service}.${op.name}`.replace(/[^A-Za-z0-9_-]/g, "_");
}

/** What `nats micro info` shows of each operation: its types and session role. */
function endpointMetadata(op: OperationContract): Record<string, string> {
  const streaming =
    op.requestStream && op.responseStream
      ? "bidi"
      : op.requestStream
        ? "client"
        : op.responseStream
          ? "server"
          : "none";
  return {
    operation: op.path,
    request_type: op.requestType,
    response_type: op.responseType,
    starts_session: String(op.startsSession),
    ends_session: String(op.endsSession),
    one_way: String(op.oneWay),
    access: op.access,
    streaming,
    content_types: "application/protobuf, application/json",
  };
}
