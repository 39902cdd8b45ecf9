import type { NatsConnection } from "@nats-io/transport-node";
import { connect } from "@nats-io/transport-node";
import { createGrpcTransport } from "../../adapters/grpc/h2-outbound.js";
import { createNatsForwarder, serveForwardedCalls } from "../../adapters/nats/cluster-forwarding.js";
import type { StreamEvent, UnaryReply } from "../../bridge/call/call.js";
import {
  type ClusterBridge,
  createClusterBridge,
  type Ownership,
} from "../../bridge/cluster/cluster-bridge.js";
import { createClusterPlacement } from "../../bridge/cluster/cluster-placement.js";
import { createPartitioning } from "../../bridge/cluster/partitions.js";
import { loadBridgeSetup } from "../../bridge/config/check-config.js";
import { createBridge } from "../../bridge/engine/bridge-engine.js";
import { createJetStreamStore, type JetStreamSessionStore } from "../../bridge/store/jetstream-store.js";
import { LAB_CONFIG } from "../support/lab-harness.js";

/**
 * One replica made of its real parts, in this process: the JetStream store (partitioned,
 * one partition), the engine with the lab process as its process over gRPC, the cluster
 * bridge and forwarding over NATS. Only the lease table is given: the test says which
 * replica owns the partition, as a replica's lease table sees it at some moment (a
 * replica whose renewals are late, or one that has not yet seen a lease lapse).
 */
export interface EngineReplica {
  readonly name: string;
  readonly bridge: ClusterBridge;
  readonly store: JetStreamSessionStore;
  readonly connection: NatsConnection;
  /** Partitions the store stopped writing on its own (it asks for a reload). */
  readonly lost: number[];
  /** What this replica's lease table says; change it to move the partition in its view. */
  view: { serves: boolean; owner: string | undefined };
  /** Claims the partition in the store (fencing any other writer) and loads its sessions. */
  take(): Promise<void>;
  call(method: string, op: LabOp, metadata?: Record<string, string>): Promise<UnaryReply>;
  stream(
    method: string,
    op: LabOp,
    metadata?: Record<string, string>,
    signal?: AbortSignal,
  ): AsyncIterable<StreamEvent>;
  /** Stops answering forwarded calls and drops its NATS connection, as a killed replica does. */
  vanish(): Promise<void>;
  close(): Promise<void>;
}

/** test.lab.v1.Op. */
export interface LabOp {
  readonly key: string;
  readonly text?: string;
  readonly delayMs?: number;
  readonly count?: number;
}

export async function startEngineReplica(options: {
  readonly name: string;
  readonly natsUrl: string;
  readonly labPort: number;
  readonly prefix: string;
  readonly ownerCheckMs?: number;
}): Promise<EngineReplica> {
  const setup = loadBridgeSetup({ file: LAB_CONFIG });
  const partitioning = createPartitioning(1);
  const lost: number[] = [];
  const connection = await connect({ servers: options.natsUrl });
  const store = await createJetStreamStore({
    connection,
    prefix: options.prefix,
    partitions: { count: 1, of: (id) => partitioning.ofSession(id), onLost: (p) => lost.push(p) },
  });
  const client = createGrpcTransport().connect({
    name: "lab",
    location: new URL(`grpc://127.0.0.1:${options.labPort}`),
    envelope: false,
  });
  const engine = createBridge({
    contracts: setup.contracts,
    store,
    processes: new Map(setup.config.processes[0]?.services.map((s) => [s, client])),
    defaults: setup.config.defaults,
    placement: createClusterPlacement(partitioning, () => [0]),
  });
  await engine.start();
  const view: EngineReplica["view"] = { serves: false, owner: undefined };
  const ownership: Ownership = {
    serves: () => view.serves,
    ownerOf: () => (view.serves ? options.name : view.owner),
    confirm: (p) => store.confirmPartition(p),
  };
  const forwarding = {
    connection,
    prefix: options.prefix,
    replica: options.name,
    contracts: setup.contracts,
    maxPayloadBytes: setup.config.defaults.maxPayloadBytes,
  };
  const bridge = createClusterBridge({
    engine,
    partitioning,
    ownership,
    replica: options.name,
    forwarder: createNatsForwarder(forwarding),
    maxCorrelationValueBytes: setup.config.defaults.maxCorrelationValueBytes,
    ...(options.ownerCheckMs === undefined ? {} : { ownerCheckMs: options.ownerCheckMs }),
  });
  const served = serveForwardedCalls(bridge, forwarding);
  const operation = (method: string) => {
    const found = setup.contracts.operations.get(`/test.lab.v1.Counter/${method}`);
    if (found === undefined) throw new Error(method);
    return found;
  };
  const metadataOf = (metadata: Record<string, string>) =>
    Object.fromEntries(Object.entries(metadata).map(([k, v]) => [k, [v]]));
  let vanished = false;
  return {
    name: options.name,
    bridge,
    store,
    connection,
    lost,
    view,
    async take() {
      await store.claimPartition(0);
      await engine.adopt(() => true);
      view.serves = true;
    },
    call(method, op, metadata = {}) {
      return bridge.unary({
        operation: operation(method),
        metadata: metadataOf(metadata),
        deadlineMs: undefined,
        signal: new AbortController().signal,
        principal: "anonymous",
        codec: "proto",
        payload: encodeOp(op),
      });
    },
    stream(method, op, metadata = {}, signal = new AbortController().signal) {
      return bridge.stream({
        operation: operation(method),
        metadata: metadataOf(metadata),
        deadlineMs: undefined,
        signal,
        principal: "anonymous",
        codec: "proto",
        messages: (async function* () {
          yield encodeOp(op);
        })(),
      });
    },
    async vanish() {
      vanished = true;
      await served.stop();
      await connection.close();
    },
    async close() {
      if (!vanished) await served.stop();
      await bridge.close().catch(() => undefined);
      await client.close();
      if (!vanished) await connection.close();
    },
  };
}

/** test.lab.v1.Op on the wire (short strings, small numbers). */
export function encodeOp(op: LabOp): Uint8Array {
  const parts: number[] = [];
  const text = (field: number, value: string): void => {
    const bytes = Buffer.from(value);
    parts.push((field << 3) | 2, bytes.length, ...bytes);
  };
  const varint = (field: number, value: number): void => {
    parts.push(field << 3);
    let v = value;
    while (v >= 0x80) {
      parts.push((v & 0x7f) | 0x80);
      v >>>= 7;
    }
    parts.push(v);
  };
  text(1, op.key);
  if (op.text !== undefined && op.text !== "") text(2, op.text);
  if (op.delayMs !== undefined) varint(3, op.delayMs);
  if (op.count !== undefined) varint(5, op.count);
  return Uint8Array.from(parts);
}
