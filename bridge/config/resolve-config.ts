import path from "node:path";
import {
  type BridgeConfig,
  type ClusterConfig,
  DEFAULT_GRPC_ADDRESS,
  DEFAULT_JETSTREAM_STORE_PREFIX,
  DEFAULT_LEASE_TTL_MS,
  DEFAULT_MAX_MEMORY_BYTES,
  DEFAULT_NATS_PREFIX,
  DEFAULT_NATS_QUEUE,
  DEFAULT_PARTITIONS,
  DEFAULT_SQLITE_PATH,
  DEFAULTS,
  type DefaultsConfig,
  HTTP_OFF,
  type HttpTlsConfig,
  type NatsConfig,
  type StoreConfig,
} from "./config.js";
import type { ConfigFile } from "./config-schema.js";

export interface ConfigOverrides {
  /** --grpc ADDR */
  readonly grpc?: string;
  /** --http ADDR */
  readonly http?: string;
  /** --http-tls-cert FILE and --http-tls-key FILE (together), relative to the working directory. */
  readonly httpTlsCert?: string;
  readonly httpTlsKey?: string;
  /** --nats URL: the NATS listener and nats:// processes on that server. */
  readonly nats?: string;
  /** --store memory|sqlite:PATH; a sqlite path is relative to the working directory. */
  readonly store?: string;
  /** --replica NAME: this bridge is one replica of several (cluster.replica). */
  readonly replica?: string;
}

/**
 * The resolved configuration: overrides over the file over the defaults, every path
 * absolute. File paths are relative to the file's directory, override paths to the
 * working directory; without a file (source undefined) both are the working directory.
 */
export function resolveConfig(
  file: ConfigFile,
  source: string | undefined,
  cwd: string,
  overrides: ConfigOverrides,
  defaultHttp?: string,
): BridgeConfig {
  const dir = source === undefined ? cwd : path.dirname(source);
  const storeOptions = {
    synchronous: file.storeOptions?.synchronous ?? "full",
    url: file.storeOptions?.url,
    replicas: file.storeOptions?.replicas ?? 1,
    maxMemoryBytes: file.storeOptions?.maxMemoryBytes ?? DEFAULT_MAX_MEMORY_BYTES,
  } as const;
  const store =
    overrides.store !== undefined
      ? resolveStore(overrides.store, cwd, cwd, storeOptions)
      : resolveStore(file.store ?? "sqlite", dir, cwd, storeOptions);
  // `off` in the file or on the command line means no HTTP listener, default or not.
  const chosenHttp = overrides.http ?? file.listeners?.http ?? defaultHttp;
  const http = chosenHttp === HTTP_OFF ? undefined : chosenHttp;
  const { oneWay, ...limits } = file.defaults ?? {};
  const defaults: DefaultsConfig = {
    ...withDefaults(DEFAULTS, limits),
    oneWay: withDefaults(DEFAULTS.oneWay, oneWay ?? {}),
  };
  return {
    source,
    contracts: {
      importPaths: (file.contracts?.importPaths ?? (source === undefined ? [] : ["."])).map((p) =>
        path.resolve(dir, p),
      ),
      files: file.contracts?.files ?? [],
    },
    processes: (file.processes ?? []).map((p) => ({
      name: p.name,
      services: p.services,
      location: p.location,
      envelope: p.envelope ?? false,
    })),
    listeners: {
      grpc: overrides.grpc ?? file.listeners?.grpc ?? DEFAULT_GRPC_ADDRESS,
      ...(http === undefined ? {} : { http }),
      ...(file.listeners?.httpCookies === undefined ? {} : { httpCookies: file.listeners.httpCookies }),
      ...httpTlsOf(file.listeners?.httpTls, overrides, dir, cwd),
      ...natsListener(resolveNats(file.listeners?.nats, overrides.nats, dir)),
    },
    store,
    ...clusterOf(file.cluster, overrides.replica),
    defaults,
  };
}

/** TLS for the HTTP listener: the command line's pair over the file's (checkOverrides wants both). */
function httpTlsOf(
  file: { certFile: string; keyFile: string } | undefined,
  overrides: ConfigOverrides,
  dir: string,
  cwd: string,
): { httpTls?: HttpTlsConfig } {
  if (overrides.httpTlsCert !== undefined && overrides.httpTlsKey !== undefined) {
    return {
      httpTls: {
        certFile: path.resolve(cwd, overrides.httpTlsCert),
        keyFile: path.resolve(cwd, overrides.httpTlsKey),
      },
    };
  }
  if (file === undefined) return {};
  return {
    httpTls: { certFile: path.resolve(dir, file.certFile), keyFile: path.resolve(dir, file.keyFile) },
  };
}

/** The cluster settings when a file's cluster block or --replica asks for them. */
function clusterOf(file: ConfigFile["cluster"], replica: string | undefined): { cluster?: ClusterConfig } {
  if (file === undefined && replica === undefined) return {};
  return {
    cluster: {
      // Checked by checkCluster: a cluster needs a name for this replica.
      replica: replica ?? file?.replica ?? "",
      partitions: file?.partitions ?? DEFAULT_PARTITIONS,
      leaseTtlMs: file?.leaseTtlMs ?? DEFAULT_LEASE_TTL_MS,
    },
  };
}

type NatsFile = NonNullable<NonNullable<ConfigFile["listeners"]>["nats"]>;

/** The NATS settings: --nats replaces the file's URL and keeps its other settings; files are relative to the config. */
function resolveNats(
  file: NatsFile | undefined,
  url: string | undefined,
  dir: string,
): NatsConfig | undefined {
  if (file === undefined && url === undefined) return undefined;
  const at = (p: string | undefined): string | undefined =>
    p === undefined ? undefined : path.resolve(dir, p);
  return {
    url: url ?? file?.url ?? "",
    prefix: file?.prefix ?? DEFAULT_NATS_PREFIX,
    queue: file?.queue ?? DEFAULT_NATS_QUEUE,
    token: file?.token,
    user: file?.user,
    password: file?.password,
    credsFile: at(file?.credsFile),
    nkeyFile: at(file?.nkeyFile),
    tls:
      file?.tls === undefined
        ? undefined
        : { caFile: at(file.tls.caFile), certFile: at(file.tls.certFile), keyFile: at(file.tls.keyFile) },
    intake: (file?.intake ?? []).map((i) => ({
      operation: i.operation,
      stream: i.stream,
      durable: i.durable,
      filterSubject: i.filterSubject,
    })),
  };
}

function natsListener(nats: NatsConfig | undefined): { nats?: NatsConfig } {
  return nats === undefined ? {} : { nats };
}

/** The defaults with every value the file sets (keys set to undefined keep the default). */
function withDefaults<T extends object>(
  defaults: T,
  given: { readonly [K in keyof T]?: T[K] | undefined },
): T {
  const result = { ...defaults };
  for (const key of Object.keys(given) as (keyof T)[]) {
    const value = given[key];
    if (value !== undefined) result[key] = value as T[keyof T];
  }
  return result;
}

/**
 * "memory", "sqlite:PATH" (relative to `dir`) or "sqlite" alone: the default database,
 * which is always ./.sessionbridge/sessions.db under the working directory, as `start`
 * documents it, wherever the config file lives.
 */
function resolveStore(
  value: string,
  dir: string,
  cwd: string,
  options: {
    synchronous: "full" | "normal";
    url: string | undefined;
    replicas: number;
    maxMemoryBytes: number;
  },
): StoreConfig {
  const { synchronous } = options;
  if (value === "memory") return { kind: "memory", maxMemoryBytes: options.maxMemoryBytes };
  if (value === "jetstream" || value.startsWith("jetstream:")) {
    const prefix = value.slice("jetstream:".length) || DEFAULT_JETSTREAM_STORE_PREFIX;
    return { kind: "jetstream", prefix, url: options.url, replicas: options.replicas };
  }
  if (value === "sqlite")
    return { kind: "sqlite", path: path.resolve(cwd, DEFAULT_SQLITE_PATH), synchronous };
  return { kind: "sqlite", path: path.resolve(dir, value.slice("sqlite:".length)), synchronous };
}
