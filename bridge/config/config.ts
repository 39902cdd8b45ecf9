/** The resolved configuration: every path absolute, every default applied, validated. */

export interface ContractsConfig {
  /** Directories .proto imports resolve against, absolute. The bridge's own proto/ is added last. */
  readonly importPaths: readonly string[];
  /** Files to load, relative to an import path. */
  readonly files: readonly string[];
}

export interface ProcessConfig {
  /** Unique name, used in logs and errors. */
  readonly name: string;
  /**
   * The services this process implements: full names, or `package.*` for every service
   * of a package. loadBridgeSetup resolves the patterns, so its config holds full names only.
   */
  readonly services: readonly string[];
  /** Where it listens, e.g. "grpc://127.0.0.1:50061". */
  readonly location: string;
  /** True when the process implements sessionbridge.v1.Process instead of the services. */
  readonly envelope: boolean;
}

export interface ListenersConfig {
  /** host:port of the inbound gRPC listener; port 0 picks a free port. */
  readonly grpc: string;
  /** host:port of the inbound HTTP listener (Connect, HTTP/1.1 and h2c); absent: not started. */
  readonly http?: string;
  /**
   * Cookies the HTTP listener maps (as Jolie's HTTP protocol does): `bind: session` binds
   * the cookie to the session id, any other value to that correlation variable.
   */
  readonly httpCookies?: readonly CookieBinding[];
  /** TLS on the HTTP listener (HTTP/1.1 and h2 by ALPN); absent: cleartext (h2c). */
  readonly httpTls?: HttpTlsConfig;
  /** The NATS connection: inbound on `<prefix>.<package.Service>.<Method>` and nats:// processes. */
  readonly nats?: NatsConfig;
}

export interface HttpTlsConfig {
  /** Absolute paths of the PEM certificate chain and private key. */
  readonly certFile: string;
  readonly keyFile: string;
}

export interface CookieBinding {
  readonly name: string;
  /** "session", or the name of a correlation variable. */
  readonly bind: string;
}

export interface NatsConfig {
  /** Server URLs, comma-separated: "nats://127.0.0.1:4222". */
  readonly url: string;
  /** First token of every inbound subject; default "sb". */
  readonly prefix: string;
  /** Queue group the replicas share, so each call reaches one bridge; default "sessionbridge". */
  readonly queue: string;
  readonly token: string | undefined;
  readonly user: string | undefined;
  readonly password: string | undefined;
  /** A credentials file (user JWT and NKey seed), absolute. */
  readonly credsFile: string | undefined;
  /** A file holding an NKey seed, absolute. */
  readonly nkeyFile: string | undefined;
  readonly tls: NatsTlsConfig | undefined;
  /** Durable one-way intake from JetStream, per operation (S9, S10). */
  readonly intake: readonly NatsIntakeConfig[];
}

/** One one-way operation fed from a JetStream stream through a durable consumer. */
export interface NatsIntakeConfig {
  /** Full method name: "examples.orders.v1.Orders.Note". */
  readonly operation: string;
  /** The stream to consume; it must exist. */
  readonly stream: string;
  /** The durable consumer's name, created if missing; replicas share it. */
  readonly durable: string;
  /** Only messages on this subject of the stream, when set. */
  readonly filterSubject: string | undefined;
}

export interface NatsTlsConfig {
  /** Absolute paths. */
  readonly caFile: string | undefined;
  readonly certFile: string | undefined;
  readonly keyFile: string | undefined;
}

export const DEFAULT_NATS_PREFIX = "sb";
export const DEFAULT_NATS_QUEUE = "sessionbridge";

export type StoreConfig =
  | {
      readonly kind: "memory";
      /** What the store may hold (storeOptions.maxMemoryBytes): a commit past it gets STORE_FULL. */
      readonly maxMemoryBytes: number;
    }
  | {
      readonly kind: "sqlite";
      /** Absolute path of the database file. */
      readonly path: string;
      /** "full" fsyncs every group commit (default); "normal" survives a process crash but not power loss. */
      readonly synchronous: "full" | "normal";
    }
  | {
      readonly kind: "jetstream";
      /** Prefix of the store's buckets, streams and subjects. */
      readonly prefix: string;
      /** Server URLs of storeOptions.url; undefined: the listeners.nats connection. */
      readonly url: string | undefined;
      /** JetStream replication factor of the store's buckets and streams. */
      readonly replicas: number;
    };

export const DEFAULT_JETSTREAM_STORE_PREFIX = "sb";

/** storeOptions.maxMemoryBytes when absent: 256 MiB. */
export const DEFAULT_MAX_MEMORY_BYTES = 256 * 1024 * 1024;

/** Retries for one-way deliveries (S11). */
export interface OneWayConfig {
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
  /** Deadline of each delivery attempt. */
  readonly attemptTimeoutMs: number;
}

export interface DefaultsConfig {
  /** Idle timeout for services that do not set their own (S12). */
  readonly idleTimeoutMs: number;
  /** Maximum lifetime for services that do not set their own (S12). */
  readonly maxLifetimeMs: number;
  /** How long Idempotency-Key outcomes are kept (S8). */
  readonly idempotencyRetentionMs: number;
  /** How long ended sessions and their journals are kept. */
  readonly sessionRetentionMs: number;
  /** Largest request message accepted, in bytes. */
  readonly maxPayloadBytes: number;
  /**
   * Largest correlation value accepted, in bytes as it travels (a string's UTF-8): values
   * are kept in the correlation index of every live session (S5).
   */
  readonly maxCorrelationValueBytes: number;
  readonly oneWay: OneWayConfig;
  /**
   * Multiplies every session idle timeout and maximum lifetime (S12), the contract's and
   * the defaults: 0.001 makes 600000 ms 600 ms, so expiry can be checked in seconds (the
   * conformance suite's time scale). 1 when absent.
   */
  readonly timeScale?: number;
}

/**
 * Several bridge replicas on one JetStream store (DESIGN §7, docs/jetstream-store.md):
 * sessions fall into `partitions`, each owned by one replica through a lease renewed
 * within `leaseTtlMs`.
 */
export interface ClusterConfig {
  /** This replica's name, unique among the replicas. */
  readonly replica: string;
  readonly partitions: number;
  /** A lease not renewed for this long lapses and another replica takes its partition over. */
  readonly leaseTtlMs: number;
}

export const DEFAULT_PARTITIONS = 64;
export const DEFAULT_LEASE_TTL_MS = 5_000;

export interface BridgeConfig {
  /** The file it was read from; undefined for the embedded defaults. */
  readonly source: string | undefined;
  readonly contracts: ContractsConfig;
  readonly processes: readonly ProcessConfig[];
  readonly listeners: ListenersConfig;
  readonly store: StoreConfig;
  /** Set when this bridge is one of several replicas (cluster: in YAML, or --replica). */
  readonly cluster?: ClusterConfig;
  readonly defaults: DefaultsConfig;
}

export const DEFAULT_GRPC_ADDRESS = "127.0.0.1:50051";
/** Where `sessionbridge start` serves HTTP when neither the file nor --http says otherwise. */
export const DEFAULT_HTTP_ADDRESS = "127.0.0.1:8080";
/** `listeners.http: off` or `--http off`: no HTTP listener. */
export const HTTP_OFF = "off";
export const DEFAULT_SQLITE_PATH = ".sessionbridge/sessions.db";

export const DEFAULTS: DefaultsConfig = {
  idleTimeoutMs: 30 * 60_000,
  maxLifetimeMs: 24 * 60 * 60_000,
  idempotencyRetentionMs: 24 * 60 * 60_000,
  sessionRetentionMs: 24 * 60 * 60_000,
  maxPayloadBytes: 4 * 1024 * 1024,
  maxCorrelationValueBytes: 1024,
  // S11: about a minute of capped exponential backoff, enough to ride out a process restart.
  oneWay: { maxAttempts: 12, initialBackoffMs: 200, maxBackoffMs: 10_000, attemptTimeoutMs: 10_000 },
};
