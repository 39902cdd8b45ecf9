import type { ContractSet } from "../contracts/contract.js";
import type { Bridge } from "../engine/bridge-engine.js";
import type { Logger } from "../logger.js";
import type { PrincipalResolver } from "../security/principal.js";

/**
 * An inbound adapter that is running: gRPC, HTTP or NATS. The runtime starts the ones the
 * configuration names and stops them together; the engine never learns which one a call
 * came through (DESIGN §7).
 */
export interface Listener {
  /** "grpc", "http", "nats": for logs and the ready line. */
  readonly transport: string;
  /** Where it listens, as bound (the real port when 0 was asked for, or the NATS subject prefix). */
  readonly address: string;
  /**
   * Stops taking new calls (health reports NOT_SERVING where the transport has health),
   * lets calls in flight finish for up to `graceMs`, then ends what is left. Idempotent.
   */
  drain(graceMs: number): Promise<void>;
  /** drain(0). */
  close(): Promise<void>;
}

/** What every inbound adapter is given to serve calls. */
export interface ListenerContext {
  readonly bridge: Bridge;
  readonly contracts: ContractSet;
  /** Credentials → principal (S13); adapters only hand credentials over. */
  readonly principals: PrincipalResolver;
  /** Largest request message accepted, in bytes (checked before it is buffered). */
  readonly maxPayloadBytes: number;
  readonly logger: Logger;
}

/** Starts one kind of inbound adapter; the runtime holds one per configured listener. */
export interface ListenerFactory<Options> {
  readonly transport: string;
  start(context: ListenerContext, options: Options): Promise<Listener>;
}
