import type { Metadata } from "../../bridge/call/metadata.js";
import type { ErrorDetail } from "../../bridge/errors/bridge-error.js";
import { Code, codeName } from "../../bridge/errors/code.js";
import { decodeErrorInfo, decodeStatus, ERROR_INFO_TYPE_URL } from "../../bridge/errors/rich-status.js";
import {
  CloseRequest,
  CloseResponse,
  GetRequest,
  GetResponse,
  HistoryRequest,
  HistoryResponse,
  type JournalEntry,
  ListRequest,
  ListResponse,
  type Session,
  SessionState,
} from "../../sdk/gen/sessionbridge/v1/session.js";
import type { LabResult } from "./lab-process.js";
import { loadLabDefinition } from "./lab-process.js";
import type { CallKind, ClientKind, LabTransport, RawOutcome } from "./lab-transport.js";

export type { ClientKind } from "./lab-transport.js";

export type LabService = "Counter" | "Unique" | "Line" | "Solo" | "Plain";

export interface LabCallOptions {
  /** Request metadata; values of "-bin" keys are base64 text. */
  readonly metadata?: Readonly<Record<string, string>>;
  /** A deadline this far ahead, set the way the client library sets it (S15). */
  readonly timeoutMs?: number;
  readonly signal?: AbortSignal;
}

export interface LabReply<T> {
  readonly response: T;
  readonly headers: Metadata;
  readonly trailers: Metadata;
  /** sb-session-id the bridge answered with (S1). */
  readonly sessionId: string | undefined;
  readonly messageId: string | undefined;
}

/** A failed call, whatever the transport, in the bridge's fault model (S14). */
export class LabFault extends Error {
  readonly code: Code;
  /** ErrorInfo reason, if the status carried one. */
  readonly reason: string | undefined;
  /** ErrorInfo metadata. */
  readonly errorMetadata: Readonly<Record<string, string>>;
  /** Every detail of the google.rpc.Status, in order. */
  readonly details: readonly ErrorDetail[];
  readonly headers: Metadata;
  readonly trailers: Metadata;
  readonly sessionId: string | undefined;
  readonly messageId: string | undefined;

  constructor(outcome: RawOutcome) {
    super(outcome.message);
    this.name = `LabFault(${codeName(outcome.code)})`;
    this.code = outcome.code;
    this.details = outcome.statusDetails === undefined ? [] : decodeStatus(outcome.statusDetails).details;
    const info = this.details.find((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
    const decoded = info === undefined ? undefined : decodeErrorInfo(info.value);
    this.reason = decoded?.reason;
    this.errorMetadata = decoded?.metadata ?? {};
    this.headers = outcome.headers;
    this.trailers = outcome.trailers;
    this.sessionId = sessionFact(outcome, "sb-session-id");
    this.messageId = sessionFact(outcome, "sb-message-id");
  }
}

export interface HistoryQuery {
  readonly sessionId: string;
  readonly follow?: boolean;
  readonly fromIndex?: number;
}

/** sessionbridge.v1.SessionService through the same client; failures reject with LabFault. */
export interface LabSessions {
  get(sessionId: string): Promise<Session>;
  list(request?: Partial<ListRequest>): Promise<ListResponse>;
  /** The journal in order; with follow, new entries until the session ends or `signal` aborts. */
  history(query: HistoryQuery, options?: { readonly signal?: AbortSignal }): AsyncIterable<JournalEntry>;
  close(sessionId: string): Promise<Session>;
}

/**
 * The lab contracts (test/fixtures/lab) through one client library or transport. Requests
 * and responses are plain objects with the .proto's field names; every failure rejects
 * with a LabFault, so a scenario reads the same over grpc-js, grpc-go, HTTP or NATS.
 */
export interface LabClient {
  readonly name: ClientKind;
  unary<T = LabResult>(
    service: LabService,
    method: string,
    request: object,
    options?: LabCallOptions,
  ): Promise<LabReply<T>>;
  serverStream<T = LabResult>(
    service: LabService,
    method: string,
    request: object,
    options?: LabCallOptions,
  ): Promise<LabReply<T[]>>;
  clientStream<T = LabResult>(
    service: LabService,
    method: string,
    requests: readonly object[],
    options?: LabCallOptions,
  ): Promise<LabReply<T>>;
  bidi<T = LabResult>(
    service: LabService,
    method: string,
    requests: readonly object[],
    options?: LabCallOptions,
  ): Promise<LabReply<T[]>>;
  readonly sessions: LabSessions;
  close(): Promise<void>;
}

/** Runs a call that must fail and returns its fault; anything but a LabFault is rethrown. */
export async function expectFault(promise: Promise<unknown>): Promise<LabFault> {
  try {
    await promise;
  } catch (error) {
    if (error instanceof LabFault) return error;
    throw error;
  }
  throw new Error("the call succeeded but was expected to fail");
}

/** The first value of a metadata key. */
export function headerOf(metadata: Metadata, key: string): string | undefined {
  return metadata[key]?.[0];
}

interface MethodCodec {
  readonly path: string;
  readonly requestStream: boolean;
  readonly responseStream: boolean;
  readonly requestSerialize: (value: object) => Buffer;
  readonly responseDeserialize: (bytes: Buffer) => unknown;
}

const KINDS: Record<CallKind, readonly [boolean, boolean]> = {
  unary: [false, false],
  server_stream: [false, true],
  client_stream: [true, false],
  bidi: [true, true],
};

function labMethod(service: LabService, method: string, kind: CallKind): MethodCodec {
  const definition = loadLabDefinition() as unknown as Record<
    string,
    Record<string, MethodCodec> | undefined
  >;
  const codec = definition[`test.lab.v1.${service}`]?.[method];
  if (codec === undefined) throw new Error(`no method ${service}/${method} in the lab contracts`);
  const [requestStream, responseStream] = KINDS[kind];
  if (codec.requestStream !== requestStream || codec.responseStream !== responseStream) {
    throw new Error(`${service}/${method} is not a ${kind} method`);
  }
  return codec;
}

/** A LabClient over any transport: encoding, decoding and the fault model live here, once. */
export function createLabClient(transport: LabTransport): LabClient {
  async function call<T>(
    kind: CallKind,
    path: string,
    requests: readonly Uint8Array[],
    decode: (bytes: Uint8Array) => T,
    options: LabCallOptions,
  ): Promise<LabReply<T[]>> {
    const responses: T[] = [];
    const outcome = await transport.call({
      kind,
      path,
      requests,
      metadata: options.metadata ?? {},
      timeoutMs: options.timeoutMs,
      signal: options.signal,
      onMessage: (bytes) => responses.push(decode(bytes)),
    });
    if (outcome.code !== Code.OK) throw new LabFault(outcome);
    return {
      response: responses,
      headers: outcome.headers,
      trailers: outcome.trailers,
      sessionId: sessionFact(outcome, "sb-session-id"),
      messageId: sessionFact(outcome, "sb-message-id"),
    };
  }

  function one<T>(reply: LabReply<T[]>): LabReply<T> {
    const [response] = reply.response;
    if (response === undefined || reply.response.length !== 1) {
      throw new Error(`expected one response message, got ${reply.response.length}`);
    }
    return { ...reply, response };
  }

  function lab<T>(
    service: LabService,
    method: string,
    kind: CallKind,
    requests: readonly object[],
    options: LabCallOptions,
  ) {
    const codec = labMethod(service, method, kind);
    return call(
      kind,
      codec.path,
      requests.map((r) => new Uint8Array(codec.requestSerialize(r))),
      (bytes) => codec.responseDeserialize(Buffer.from(bytes)) as T,
      options,
    );
  }

  const sessionCall = async <Res>(
    method: string,
    request: Uint8Array,
    decode: (bytes: Uint8Array) => Res,
  ): Promise<Res> =>
    one(await call("unary", `/sessionbridge.v1.SessionService/${method}`, [request], decode, {})).response;

  const required = (session: Session | undefined): Session => {
    if (session === undefined) throw new Error("the bridge answered without a session");
    return session;
  };

  const sessions: LabSessions = {
    async get(sessionId) {
      const encoded = GetRequest.encode({ sessionId }).finish();
      return required((await sessionCall("Get", encoded, (b) => GetResponse.decode(b))).session);
    },
    list(request = {}) {
      const encoded = ListRequest.encode({
        service: "",
        state: SessionState.SESSION_STATE_UNSPECIFIED,
        pageSize: 0,
        pageToken: "",
        ...request,
      }).finish();
      return sessionCall("List", encoded, (b) => ListResponse.decode(b));
    },
    async close(sessionId) {
      const encoded = CloseRequest.encode({ sessionId }).finish();
      return required((await sessionCall("Close", encoded, (b) => CloseResponse.decode(b))).session);
    },
    history: (query, options = {}) => history(query, options.signal),
  };

  /** Entries as they arrive; the call is cancelled when the reader stops early. */
  async function* history(query: HistoryQuery, signal: AbortSignal | undefined): AsyncIterable<JournalEntry> {
    const stop = new AbortController();
    const onAbort = (): void => stop.abort();
    signal?.addEventListener("abort", onAbort, { once: true });
    const queue: JournalEntry[] = [];
    let wake: (() => void) | undefined;
    let finished: { outcome?: RawOutcome; error?: unknown } | undefined;
    const request = HistoryRequest.encode({
      sessionId: query.sessionId,
      follow: query.follow ?? false,
      fromIndex: query.fromIndex ?? 0,
    }).finish();
    const running = transport
      .call({
        kind: "server_stream",
        path: "/sessionbridge.v1.SessionService/History",
        requests: [request],
        metadata: {},
        signal: stop.signal,
        onMessage: (bytes) => {
          const entry = HistoryResponse.decode(bytes).entry;
          if (entry !== undefined) queue.push(entry);
          wake?.();
        },
      })
      .then(
        (outcome) => {
          finished = { outcome };
          wake?.();
        },
        (error: unknown) => {
          finished = { error };
          wake?.();
        },
      );
    try {
      for (;;) {
        const entry = queue.shift();
        if (entry !== undefined) {
          yield entry;
          continue;
        }
        if (finished !== undefined) break;
        await new Promise<void>((resolve) => {
          wake = resolve;
        });
        wake = undefined;
      }
      if (finished.error !== undefined) throw finished.error;
      const outcome = finished.outcome as RawOutcome;
      if (outcome.code === Code.CANCELLED && signal?.aborted) return;
      if (outcome.code !== Code.OK) throw new LabFault(outcome);
    } finally {
      signal?.removeEventListener("abort", onAbort);
      stop.abort();
      await running;
    }
  }

  return {
    name: transport.name,
    async unary<T>(service: LabService, method: string, request: object, options: LabCallOptions = {}) {
      return one(await lab<T>(service, method, "unary", [request], options));
    },
    serverStream<T>(service: LabService, method: string, request: object, options: LabCallOptions = {}) {
      return lab<T>(service, method, "server_stream", [request], options);
    },
    async clientStream<T>(
      service: LabService,
      method: string,
      requests: readonly object[],
      options: LabCallOptions = {},
    ) {
      return one(await lab<T>(service, method, "client_stream", requests, options));
    },
    bidi<T>(service: LabService, method: string, requests: readonly object[], options: LabCallOptions = {}) {
      return lab<T>(service, method, "bidi", requests, options);
    },
    sessions,
    close: () => transport.close(),
  };
}

function sessionFact(outcome: RawOutcome, key: string): string | undefined {
  return headerOf(outcome.headers, key) ?? headerOf(outcome.trailers, key);
}
