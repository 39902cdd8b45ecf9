import type { StreamCall, StreamEvent, UnaryCall, UnaryReply } from "../call/call.js";
import { readControl } from "../call/control.js";
import type { ServiceContract } from "../contracts/contract.js";
import { extractCorrelation } from "../contracts/correlation.js";
import type { Bridge, EngineStats } from "../engine/bridge-engine.js";
import type { SessionsApi } from "../engine/sessions-api.js";
import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { SessionRecord } from "../store/records.js";
import type { Partitioning } from "./partitions.js";

/** Who owns what, as the lease table says now (partition-leases.ts). */
export interface Ownership {
  /** True while this replica owns the partition and has loaded its sessions. */
  serves(partition: number): boolean;
  /** The owner of a partition with a live lease, or undefined. */
  ownerOf(partition: number): string | undefined;
  /**
   * True when this replica still writes the partition and nothing was committed there
   * but through it, so what it holds of the partition's sessions is current (the store's
   * confirmPartition). False makes it load the partition again.
   */
  confirm(partition: number): Promise<boolean>;
}

/** Sends a call to the replica that owns its session and returns that replica's answer unchanged. */
export interface Forwarder {
  unary(replica: string, call: UnaryCall): Promise<UnaryReply>;
  /** SessionService Close (S12) of a session the replica owns. */
  close(replica: string, sessionId: string, principal: string): Promise<SessionRecord>;
  /** A streaming call of a session the replica owns: the owner's events, unchanged. */
  stream?(replica: string, call: StreamCall): AsyncIterable<StreamEvent>;
}

export interface ClusterBridgeOptions {
  /** The engine of this replica, created with a SessionPlacement. */
  readonly engine: Bridge;
  readonly partitioning: Partitioning;
  readonly ownership: Ownership;
  readonly replica: string;
  readonly forwarder: Forwarder;
  /** defaults.maxCorrelationValueBytes, so routing reads the values as the engine will. */
  readonly maxCorrelationValueBytes: number;
  /** How often a forwarded stream checks that its owner still holds the lease. Default 250. */
  readonly ownerCheckMs?: number;
}

/** Default ownerCheckMs: small beside a lease TTL (at least 500 ms). */
const OWNER_CHECK_MS = 250;

/** The bridge every inbound adapter of a replica is given: the engine behind a partition router. */
export interface ClusterBridge extends Bridge {
  /** A call another replica forwarded here: served only if this replica owns its partition. */
  serveForwarded(call: UnaryCall): Promise<UnaryReply>;
  /** A streaming call another replica forwarded here: served only if this replica owns its partition. */
  serveForwardedStream(call: StreamCall): AsyncIterable<StreamEvent>;
  /** A Close another replica forwarded here. */
  serveForwardedClose(sessionId: string, principal: string): Promise<SessionRecord>;
  /** Resolves once the calls this replica runs in `partition` have finished. */
  settled(partition: number): Promise<void>;
}

/**
 * Routes each call to the replica that owns its session's partition (DESIGN §7):
 * served here when this replica owns it, else forwarded to the owner over NATS with the
 * caller's deadline, metadata, principal and idempotency key, and the owner's answer
 * (a fault included) returned unchanged. While a partition has no owner that serves it
 * (a takeover is replaying it, or its owner died and the lease has not lapsed yet) the
 * call fails with UNAVAILABLE, reason PARTITION_MOVING, and nothing of it is recorded:
 * a client retries it (safely with sb-seq or an Idempotency-Key, S7/S8). It sits in
 * front of the engine as a Bridge, so no adapter knows replicas exist.
 *
 * A streaming call naming a session another replica owns is forwarded to the owner the
 * same way, when the forwarder carries streams. A server stream that names no session is
 * routed by the correlation values of its one request (S1, S4), read before anything is
 * decided, exactly as a unary call; a stream of requests without a session id is served
 * where it arrives (its session is born in a partition this replica owns, or the store
 * refuses the commit).
 */
export function createClusterBridge(options: ClusterBridgeOptions): ClusterBridge {
  const { engine, partitioning, ownership, replica, forwarder } = options;
  const running = new Map<number, Set<Promise<unknown>>>();

  const track = <T>(partition: number, promise: Promise<T>): Promise<T> => {
    let set = running.get(partition);
    if (set === undefined) {
      set = new Set();
      running.set(partition, set);
    }
    set.add(promise);
    const done = (): void => {
      set.delete(promise);
      if (set.size === 0 && running.get(partition) === set) running.delete(partition);
    };
    promise.then(done, done);
    return promise;
  };

  /** The partition a call's session lives in, or undefined when any replica may serve it. */
  const partitionOf = (call: UnaryCall | StreamCall, payload: Uint8Array | undefined): number | undefined => {
    const service: ServiceContract | undefined = engine.contracts.services.get(call.operation.service);
    if (service === undefined || !service.sessionful) return undefined;
    let sessionId: string | undefined;
    try {
      sessionId = readControl(call.metadata).sessionId;
    } catch {
      return undefined; // malformed control headers: the engine answers INVALID_ARGUMENT
    }
    if (sessionId !== undefined) return partitioning.ofSession(sessionId);
    if (service.execution !== "concurrent") return partitioning.ofService(service.name);
    if (call.operation.correlation === undefined || payload === undefined) return undefined;
    try {
      const { key } = extractCorrelation(call.operation, payload, options.maxCorrelationValueBytes);
      return partitioning.ofCorrelation(service.name, key);
    } catch {
      return undefined; // malformed: the engine answers it (S4), wherever it runs
    }
  };

  /**
   * A refusal the engine computed from what this replica holds of a session (S1/S4 not
   * found, S3/S5/S6 collisions, S7 numbering, S8 key reuse, S12 ended) committed nothing,
   * so the store's fence never saw it: a replica deposed without knowing it yet, or one
   * whose view is behind a commit, would refuse for good a call the owner accepts. It is
   * answered only once the store confirms this replica still writes the partition and no
   * one else wrote there; otherwise the call gets UNAVAILABLE (PARTITION_MOVING), which a
   * client retries with the same sb-seq or Idempotency-Key, and the partition is loaded
   * again (DESIGN §7). Outcomes that went through a commit need no confirmation.
   */
  const confirmed = async <T>(partition: number, answer: Promise<T>): Promise<T> => {
    try {
      return await answer;
    } catch (error) {
      if (!fromLocalState(error)) throw error;
      let current = false;
      try {
        current = await ownership.confirm(partition);
      } catch {
        current = false;
      }
      if (!current)
        throw partitionMoving(partition, "this replica could not confirm its view of the session");
      throw error;
    }
  };

  /** The same for a stream the engine refuses (S1/S4 routing, S12 ended): confirmed first. */
  async function* confirmedStream(
    partition: number,
    events: AsyncIterable<StreamEvent>,
  ): AsyncGenerator<StreamEvent> {
    let failure: unknown;
    try {
      yield* events;
      return;
    } catch (error) {
      failure = error;
    }
    await confirmed(partition, Promise.reject(failure));
  }

  /**
   * A forwarded stream lasts only while its owner holds the partition's lease. NATS gives
   * no sign that the owner went away (a killed replica just stops sending), so without
   * this the caller would wait for its deadline, or a day. The lease table is checked
   * every ownerCheckMs: once the lease lapsed or moved — at most a lease TTL after the
   * owner died, as this replica sees it — the stream is cancelled (the owner, if alive,
   * is told to stop) and ends with UNAVAILABLE (PARTITION_MOVING), which a client retries.
   */
  async function* whileOwned(
    partition: number,
    owner: string,
    call: StreamCall,
    forward: NonNullable<Forwarder["stream"]>,
  ): AsyncGenerator<StreamEvent> {
    const lost = new AbortController();
    const check = setInterval(() => {
      if (ownership.ownerOf(partition) !== owner)
        lost.abort(partitionMoving(partition, `its owner ${owner} no longer holds it; the stream was cut`));
    }, options.ownerCheckMs ?? OWNER_CHECK_MS);
    check.unref();
    try {
      yield* forward(owner, { ...call, signal: AbortSignal.any([call.signal, lost.signal]) });
    } catch (error) {
      if (lost.signal.aborted && !call.signal.aborted) throw lost.signal.reason;
      throw error;
    } finally {
      clearInterval(check);
    }
  }

  /** A stream whose partition is known: served here, forwarded to its owner, or refused as moving. */
  const routeStream = (partition: number, call: StreamCall): AsyncIterable<StreamEvent> => {
    if (ownership.serves(partition)) return confirmedStream(partition, engine.stream(call));
    const owner = ownership.ownerOf(partition);
    if (owner === undefined || owner === replica || forwarder.stream === undefined)
      throw partitionMoving(partition, "it has no serving owner");
    return whileOwned(partition, owner, call, forwarder.stream.bind(forwarder));
  };

  /** A forwarded stream is never forwarded again, as for unary calls. */
  const serveForwardedIn = (partition: number, call: StreamCall): AsyncIterable<StreamEvent> => {
    if (!ownership.serves(partition)) throw partitionMoving(partition, "its owner is changing");
    return confirmedStream(partition, engine.stream(call));
  };

  /**
   * A server stream of a correlated CONCURRENT operation that names no session: its
   * partition is in the correlation values of its one request (S4), as for a unary call.
   */
  const routedByRequest = (call: StreamCall): boolean =>
    !call.operation.requestStream &&
    call.operation.correlation !== undefined &&
    engine.contracts.services.get(call.operation.service)?.sessionful === true;

  /** Reads the stream's first request, routes by it, and hands the route the stream with that request replayed. */
  async function* afterFirstRequest(
    call: StreamCall,
    route: (partition: number | undefined, replay: StreamCall) => AsyncIterable<StreamEvent>,
  ): AsyncGenerator<StreamEvent> {
    const requests = call.messages[Symbol.asyncIterator]();
    const first = await requests.next();
    const replay: StreamCall = {
      ...call,
      messages: (async function* () {
        if (first.done === true) return;
        yield first.value;
        for (let next = await requests.next(); next.done !== true; next = await requests.next())
          yield next.value;
      })(),
    };
    yield* route(first.done === true ? undefined : partitionOf(call, first.value), replay);
  }

  const serveHere = (partition: number, call: UnaryCall): Promise<UnaryReply> => {
    // Checked again after admission: the engine answers only while this replica serves it.
    return track(partition, confirmed(partition, engine.unary(call)));
  };

  // Reads (get, list, history) come from the shared store on any replica; closing a
  // session changes it, so only its owner does it (S12), like any other call.
  const sessions: SessionsApi = {
    get: (sessionId, principal) => engine.sessions.get(sessionId, principal),
    list: (options, principal) => engine.sessions.list(options, principal),
    history: (sessionId, options, principal) => engine.sessions.history(sessionId, options, principal),
    async close(sessionId, principal) {
      const partition = partitioning.ofSession(sessionId);
      if (ownership.serves(partition))
        return confirmed(partition, engine.sessions.close(sessionId, principal));
      const owner = ownership.ownerOf(partition);
      if (owner === undefined || owner === replica)
        throw partitionMoving(partition, "it has no serving owner");
      return forwarder.close(owner, sessionId, principal);
    },
  };

  return {
    contracts: engine.contracts,
    sessions,

    async serveForwardedClose(sessionId, principal) {
      const partition = partitioning.ofSession(sessionId);
      if (!ownership.serves(partition)) throw partitionMoving(partition, "its owner is changing");
      return confirmed(partition, engine.sessions.close(sessionId, principal));
    },

    async unary(call) {
      const partition = partitionOf(call, call.payload);
      if (partition === undefined) return engine.unary(call);
      if (ownership.serves(partition)) return serveHere(partition, call);
      const owner = ownership.ownerOf(partition);
      if (owner === undefined || owner === replica)
        throw partitionMoving(partition, "it has no serving owner");
      return forwarder.unary(owner, call);
    },

    async serveForwarded(call) {
      const partition = partitionOf(call, call.payload);
      if (partition === undefined) return engine.unary(call);
      // Never forwarded again: a call that finds its owner changed goes back to the client.
      if (!ownership.serves(partition)) throw partitionMoving(partition, "its owner is changing");
      return serveHere(partition, call);
    },

    stream(call): AsyncIterable<StreamEvent> {
      const partition = partitionOf(call, undefined);
      if (partition !== undefined) return routeStream(partition, call);
      if (!routedByRequest(call)) return engine.stream(call);
      return afterFirstRequest(call, (partition, replay) =>
        partition === undefined ? engine.stream(replay) : routeStream(partition, replay),
      );
    },

    serveForwardedStream(call): AsyncIterable<StreamEvent> {
      const partition = partitionOf(call, undefined);
      if (partition !== undefined) return serveForwardedIn(partition, call);
      if (!routedByRequest(call)) return engine.stream(call);
      return afterFirstRequest(call, (partition, replay) =>
        partition === undefined ? engine.stream(replay) : serveForwardedIn(partition, replay),
      );
    },

    async settled(partition) {
      const set = running.get(partition);
      if (set !== undefined) await Promise.allSettled([...set]);
    },

    stats: (): EngineStats => engine.stats(),
    start: () => engine.start(),
    drain: (graceMs) => engine.drain(graceMs),
    adopt: (owns) => engine.adopt(owns),
    release: (owns) => engine.release(owns),
    close: () => engine.close(),
    [Symbol.asyncDispose]: () => engine.close(),
  };
}

/** UNAVAILABLE, retryable: the partition has no owner that serves it right now (DESIGN §7). */
export function partitionMoving(partition: number, why: string): BridgeError {
  return new BridgeError(
    Code.UNAVAILABLE,
    Reason.PARTITION_MOVING,
    `the session's partition ${partition} is moving between replicas (${why}); retry`,
    { metadata: { partition: String(partition) } },
  );
}

/**
 * Refusals whose verdict depends on the state of a session as this replica holds it,
 * not on the request alone nor on a recorded outcome (a process's own fault passes).
 */
const LOCAL_VERDICTS: ReadonlySet<string> = new Set([
  Reason.SESSION_NOT_FOUND,
  Reason.CORRELATION_ERROR,
  Reason.SESSION_ALREADY_EXISTS,
  Reason.SINGLE_SESSION_ACTIVE,
  Reason.OUT_OF_SEQUENCE,
  Reason.INVALID_SEQ,
  Reason.IDEMPOTENCY_KEY_REUSED,
  Reason.SESSION_CLOSED,
  Reason.SESSION_EXPIRED,
  Reason.SESSION_ENDED,
  Reason.JOURNAL_CONFLICT,
]);

function fromLocalState(error: unknown): boolean {
  return error instanceof BridgeError && !error.fromProcess && LOCAL_VERDICTS.has(error.reason);
}
