import { Client, type ClientReadableStream, credentials, Metadata, type ServiceError } from "@grpc/grpc-js";
import {
  type HistoryResponse,
  type JournalEntry,
  type ListRequest,
  type ListResponse,
  type Session,
  SessionServiceService,
} from "../gen/sessionbridge/v1/session.js";

export interface HistoryQuery {
  readonly sessionId: string;
  readonly follow?: boolean;
  readonly fromIndex?: number;
}

/** A promise/AsyncIterable client for a bridge's sessionbridge.v1.SessionService. */
export interface SessionServiceClient {
  getSession(sessionId: string): Promise<Session>;
  listSessions(request?: Partial<ListRequest>): Promise<ListResponse>;
  /** The journal in order; with follow, new entries until the session ends or `signal` aborts. */
  history(query: HistoryQuery, signal?: AbortSignal): AsyncIterable<JournalEntry>;
  closeSession(sessionId: string): Promise<Session>;
  /** Closes the channel. */
  close(): void;
}

const definition = SessionServiceService;

/**
 * Built from the generated service definition, not a generated client: grpc-js would put
 * the Close method on the client object as `close`, where it shadows Client.close().
 */
export function createSessionServiceClient(
  address: string,
  options: { deadlineMs?: number } = {},
): SessionServiceClient {
  const client = new Client(address, credentials.createInsecure());
  const callOptions = () =>
    options.deadlineMs === undefined ? {} : { deadline: Date.now() + options.deadlineMs };

  function unary<Req, Res>(
    method: {
      path: string;
      requestSerialize: (value: Req) => Buffer;
      responseDeserialize: (value: Buffer) => Res;
    },
    request: Req,
  ): Promise<Res> {
    return new Promise((resolve, reject) => {
      client.makeUnaryRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        request,
        new Metadata(),
        callOptions(),
        (error: ServiceError | null, response?: Res) => {
          if (error !== null || response === undefined) reject(error ?? new Error("empty response"));
          else resolve(response);
        },
      );
    });
  }

  function required(session: Session | undefined): Session {
    if (session === undefined) throw new Error("the bridge answered without a session");
    return session;
  }

  return {
    async getSession(sessionId) {
      return required((await unary(definition.get, { sessionId })).session);
    },
    listSessions(request = {}) {
      return unary(definition.list, { service: "", state: 0, pageSize: 0, pageToken: "", ...request });
    },
    async *history(query, signal) {
      const method = definition.history;
      const stream: ClientReadableStream<HistoryResponse> = client.makeServerStreamRequest(
        method.path,
        method.requestSerialize,
        method.responseDeserialize,
        { sessionId: query.sessionId, follow: query.follow ?? false, fromIndex: query.fromIndex ?? 0 },
        new Metadata(),
        {},
      );
      const onAbort = (): void => stream.cancel();
      signal?.addEventListener("abort", onAbort, { once: true });
      try {
        for await (const response of stream as AsyncIterable<HistoryResponse>) {
          if (response.entry !== undefined) yield response.entry;
        }
      } catch (error) {
        if (signal?.aborted && (error as ServiceError).code === 1) return;
        throw error;
      } finally {
        signal?.removeEventListener("abort", onAbort);
        stream.cancel();
      }
    },
    async closeSession(sessionId) {
      return required((await unary(definition.close, { sessionId })).session);
    },
    close() {
      client.close();
    },
  };
}
