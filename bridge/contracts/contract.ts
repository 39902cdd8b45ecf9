import type { FileRegistry } from "@bufbuild/protobuf";

/** How the sessions of one service run relative to each other (S6). */
export type ExecutionModality = "concurrent" | "sequential" | "single";

/** What a starter does when its correlation values match a live session (S3). */
export type StartReusePolicy = "join" | "reject-duplicate";

/** Exclusive operations run alone within a session; shared ones side by side (S6). */
export type Access = "exclusive" | "shared";

/** The value families that correlation compares exactly (S5). */
export type ValueFamily = "string" | "bytes" | "int" | "float" | "bool";

/** One step of an alias path: the field to read at that depth. */
export interface AliasStep {
  readonly name: string;
  readonly number: number;
  /** Wire type the field must arrive with: 0 varint, 1 i64, 2 length-delimited, 5 i32. */
  readonly wireType: 0 | 1 | 2 | 5;
}

/** A correlation variable bound to a singular scalar field of the request (S5). */
export interface CompiledAlias {
  readonly variable: string;
  /** The path as written in the contract, e.g. "header.tenant". */
  readonly path: string;
  /** Message fields to descend through, then the leaf. */
  readonly steps: readonly AliasStep[];
  /** The protobuf type of the leaf field, e.g. "string", "int64", "sint32", an enum. */
  readonly leafType: string;
  readonly family: ValueFamily;
}

export interface OperationCorrelation {
  readonly set: string;
  /** One alias per variable of the set, in the set's variable order. */
  readonly aliases: readonly CompiledAlias[];
}

export interface CorrelationSetContract {
  readonly name: string;
  readonly variables: readonly string[];
}

export interface OperationContract {
  /** gRPC path, the operation's identity everywhere: "/examples.orders.v1.Orders/Open". */
  readonly path: string;
  /** Full name of the service. */
  readonly service: string;
  /** Method name as declared. */
  readonly name: string;
  /** Full names of the message types. */
  readonly requestType: string;
  readonly responseType: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly startsSession: boolean;
  readonly endsSession: boolean;
  readonly oneWay: boolean;
  readonly access: Access;
  /**
   * The method declares `idempotency_level = NO_SIDE_EFFECTS`: like a shared operation, it
   * may be called with Connect's GET.
   */
  readonly noSideEffects?: boolean;
  readonly correlation: OperationCorrelation | undefined;
}

export interface ServiceContract {
  readonly name: string;
  /** The .proto file that declares it, relative to its import path. */
  readonly file: string;
  /** False for a plain service with no session options: calls pass through statelessly. */
  readonly sessionful: boolean;
  readonly execution: ExecutionModality;
  /** Undefined when the contract leaves it to the bridge default. */
  readonly idleTimeoutMs: number | undefined;
  readonly maxLifetimeMs: number | undefined;
  readonly startReuse: StartReusePolicy;
  readonly correlationSets: ReadonlyMap<string, CorrelationSetContract>;
  readonly operations: readonly OperationContract[];
}

/** Everything loaded from the configured .proto files. */
export interface ContractSet {
  readonly services: ReadonlyMap<string, ServiceContract>;
  /** By gRPC path. */
  readonly operations: ReadonlyMap<string, OperationContract>;
  /**
   * Every compiled definition, for adapters that encode, decode or transcode messages:
   * the contracts with their imports, the bridge's own protos and the served ones
   * (grpc.health.v1, google.rpc.ErrorInfo).
   */
  readonly registry: FileRegistry;
  /**
   * The FileDescriptorProto of every compiled file, encoded, imports before the files
   * that import them, without source info: what server reflection serves.
   */
  readonly files: readonly Uint8Array[];
}
