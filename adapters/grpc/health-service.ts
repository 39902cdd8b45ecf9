import { BinaryReader, BinaryWriter } from "@bufbuild/protobuf/wire";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { GrpcHandler } from "./h2-server.js";
import type { GrpcServerCall } from "./h2-server-call.js";

/** grpc.health.v1.HealthCheckResponse.ServingStatus. */
export enum ServingStatus {
  UNKNOWN = 0,
  SERVING = 1,
  NOT_SERVING = 2,
  SERVICE_UNKNOWN = 3,
}

const PATH = "/grpc.health.v1.Health/";

export interface Health {
  readonly handlers: ReadonlyMap<string, GrpcHandler>;
  /** Sets every service's status at once (NOT_SERVING when draining). */
  setAll(status: ServingStatus): void;
}

/**
 * The standard gRPC health service (grpc.health.v1.Health: Check, List, Watch) for the
 * overall server ("") and each named service. Its three small messages are encoded here
 * by field number.
 */
export function createHealth(services: readonly string[]): Health {
  const statuses = new Map<string, ServingStatus>([["", ServingStatus.SERVING]]);
  for (const service of services) statuses.set(service, ServingStatus.SERVING);
  const watchers = new Set<() => void>();

  const check: GrpcHandler = (call) =>
    void respond(call, async () => {
      const service = readService(await call.message());
      const status = statuses.get(service);
      if (status === undefined) {
        throw new BridgeError(
          Code.NOT_FOUND,
          Reason.INVALID_REQUEST,
          `unknown service ${JSON.stringify(service)}`,
        );
      }
      return encodeStatus(status);
    });

  const list: GrpcHandler = (call) =>
    void respond(call, async () => {
      await call.message();
      const writer = new BinaryWriter();
      for (const [service, status] of statuses) {
        writer.uint32(10).fork().uint32(10).string(service).uint32(18).bytes(encodeStatus(status)).join();
      }
      return writer.finish();
    });

  const watch: GrpcHandler = (call) =>
    void (async () => {
      try {
        const service = readService(await call.message());
        let last: ServingStatus | undefined;
        let wake: (() => void) | undefined;
        const notify = (): void => wake?.();
        watchers.add(notify);
        call.signal.addEventListener("abort", notify, { once: true });
        try {
          while (!call.finished) {
            const status = statuses.get(service) ?? ServingStatus.SERVICE_UNKNOWN;
            if (status !== last) {
              last = status;
              await call.write(encodeStatus(status));
            }
            await new Promise<void>((resolve) => {
              wake = resolve;
            });
          }
        } finally {
          watchers.delete(notify);
        }
      } catch (error) {
        call.fail(BridgeError.from(error));
      }
    })();

  return {
    handlers: new Map([
      [`${PATH}Check`, check],
      [`${PATH}List`, list],
      [`${PATH}Watch`, watch],
    ]),
    setAll(status) {
      for (const service of statuses.keys()) statuses.set(service, status);
      for (const notify of watchers) notify();
    },
  };
}

async function respond(call: GrpcServerCall, work: () => Promise<Uint8Array>): Promise<void> {
  try {
    await call.write(await work());
    call.end({});
  } catch (error) {
    call.fail(BridgeError.from(error));
  }
}

function readService(bytes: Uint8Array): string {
  const reader = new BinaryReader(bytes);
  let service = "";
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === 2) service = reader.string();
    else reader.skip(wireType);
  }
  return service;
}

function encodeStatus(status: ServingStatus): Uint8Array {
  const writer = new BinaryWriter();
  if (status !== 0) writer.uint32(8).int32(status);
  return writer.finish();
}
