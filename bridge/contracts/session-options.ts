import {
  type DescExtension,
  type DescMethod,
  type DescService,
  type FileRegistry,
  getOption,
  hasOption,
} from "@bufbuild/protobuf";
import { optionPosition, type SourcePosition } from "./source-positions.js";

/** The two options a contract uses (proto/sessionbridge/v1/options.proto). */
export const SERVICE_OPTION = "sessionbridge.v1.service";
export const METHOD_OPTION = "sessionbridge.v1.method";

/** sessionbridge.v1.ServiceSessionOptions as @bufbuild/protobuf represents it. */
export interface ServiceOptionValue {
  readonly execution: number;
  readonly idleTimeoutMs: bigint;
  readonly maxLifetimeMs: bigint;
  readonly startReuse: number;
  readonly correlationSets: readonly { readonly name: string; readonly variables: readonly string[] }[];
}

/** sessionbridge.v1.MethodSessionOptions as @bufbuild/protobuf represents it. */
export interface MethodOptionValue {
  readonly startsSession: boolean;
  readonly endsSession: boolean;
  readonly correlation: readonly {
    readonly set: string;
    readonly aliases: readonly { readonly variable: string; readonly path: string }[];
  }[];
  readonly oneWay: boolean;
  readonly access: number;
}

export interface SessionOptions {
  /** The options of a service; undefined when it sets none. */
  service(service: DescService): ServiceOptionValue | undefined;
  method(method: DescMethod): MethodOptionValue | undefined;
  /** Where the service's or method's sessionbridge option is written, else where it is declared. */
  position(element: DescService | DescMethod): SourcePosition | undefined;
}

/**
 * Reads the sessionbridge options of compiled services and methods. The compiler has
 * already checked them against options.proto (field names, types, enum values, fields set
 * twice), so what remains are the rules across fields, which build-service checks.
 * Several `option (x).a = …;` lines arrive merged into one message, as protoc merges them.
 */
export function sessionOptions(registry: FileRegistry): SessionOptions {
  const service = registry.getExtension(SERVICE_OPTION);
  const method = registry.getExtension(METHOD_OPTION);
  const read = <T>(
    element: DescService | DescMethod,
    extension: DescExtension | undefined,
  ): T | undefined => {
    if (extension === undefined) return undefined;
    return hasOption(element, extension) ? (getOption(element, extension) as T) : undefined;
  };
  return {
    service: (s) => read<ServiceOptionValue>(s, service),
    method: (m) => read<MethodOptionValue>(m, method),
    position: (element) => {
      const extension = element.kind === "service" ? service : method;
      return optionPosition(element, extension?.number ?? 0);
    },
  };
}
