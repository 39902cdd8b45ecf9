import type { OutgoingHttpHeaders } from "node:http";
import type { JsonCodec } from "../../bridge/codec/json-codec.js";
import { decodeEnvelope } from "../../bridge/engine/envelope-codec.js";
import type { SessionsApi } from "../../bridge/engine/sessions-api.js";
import { BridgeError } from "../../bridge/errors/bridge-error.js";
import { Code } from "../../bridge/errors/code.js";
import { Reason } from "../../bridge/errors/reason.js";
import type { PrincipalResolver } from "../../bridge/security/principal.js";
import type { SessionState } from "../../bridge/store/records.js";
import { SessionServiceService } from "../../sdk/gen/sessionbridge/v1/session.js";
import { sessionToProto } from "../grpc/session-service.js";
import { connectErrorJson } from "./connect-error.js";
import { replyError } from "./connect-inbound.js";
import { headerValue } from "./http-metadata.js";
import type { HttpRequest, HttpResponse } from "./http-server.js";

const d = SessionServiceService;
const SESSION_ID = /^[A-Za-z0-9_-]{1,128}$/;
const STATES: ReadonlySet<string> = new Set(["active", "closed", "expired"]);

export interface SessionsRest {
  readonly api: SessionsApi;
  readonly json: JsonCodec;
  readonly principals: PrincipalResolver;
}

/**
 * The browser-friendly mirror of sessionbridge.v1.SessionService: `GET /sessions`,
 * `GET /sessions/{id}`, `DELETE /sessions/{id}` answer with the proto3 JSON of the
 * service's responses, and `GET /sessions/{id}/events` streams the journal as Server-Sent
 * Events (S9). Every call is scoped to the caller's principal (S13). Returns false when
 * the path is not one of these.
 */
export function serveSessions(rest: SessionsRest, request: HttpRequest, response: HttpResponse): boolean {
  const url = new URL(request.url ?? "/", "http://bridge");
  const parts = url.pathname.split("/").filter((p) => p !== "");
  if (parts[0] !== "sessions" || parts.length > 3) return false;
  if (parts.length === 3 && parts[2] !== "events") return false;
  const bearer = headerValue(request.headers, "authorization")?.match(/^Bearer\s+(.+)$/i)?.[1];
  const principal = rest.principals.resolve(bearer === undefined ? {} : { bearerToken: bearer });
  void (async () => {
    try {
      const id = parts[1] === undefined ? undefined : checkId(decodeURIComponent(parts[1]));
      const method = request.method ?? "GET";
      if (id === undefined && method === "GET")
        return await list(rest, url.searchParams, principal, response);
      if (id !== undefined && parts.length === 2 && method === "GET") {
        const bytes = d.get.responseSerialize({ session: sessionToProto(await rest.api.get(id, principal)) });
        return sendJson(response, rest.json.toJson("sessionbridge.v1.GetResponse", bytes));
      }
      if (id !== undefined && parts.length === 2 && method === "DELETE") {
        const bytes = d.close.responseSerialize({
          session: sessionToProto(await rest.api.close(id, principal)),
        });
        return sendJson(response, rest.json.toJson("sessionbridge.v1.CloseResponse", bytes));
      }
      if (id !== undefined && parts.length === 3 && method === "GET") {
        return await events(rest, id, request, response, principal);
      }
      replyError(
        response,
        new BridgeError(
          Code.UNIMPLEMENTED,
          Reason.INVALID_REQUEST,
          `${method} is not allowed on ${url.pathname}`,
        ),
        405,
        { allow: parts.length === 2 ? "GET, DELETE" : "GET" },
      );
    } catch (error) {
      replyError(response, BridgeError.from(error));
    }
  })();
  return true;
}

async function list(
  rest: SessionsRest,
  query: URLSearchParams,
  principal: string,
  response: HttpResponse,
): Promise<void> {
  const state = query.get("state") ?? undefined;
  if (state !== undefined && !STATES.has(state)) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_REQUEST,
      "state must be active, closed or expired",
    );
  }
  const pageSizeText = query.get("pageSize");
  const pageSize = pageSizeText === null ? undefined : Number(pageSizeText);
  const service = query.get("service") ?? undefined;
  const pageToken = query.get("pageToken") ?? undefined;
  const page = await rest.api.list(
    {
      ...(service === undefined ? {} : { service }),
      ...(state === undefined ? {} : { state: state as SessionState }),
      ...(pageSize === undefined ? {} : { pageSize }),
      ...(pageToken === undefined ? {} : { pageToken }),
    },
    principal,
  );
  const bytes = d.list.responseSerialize({
    sessions: page.sessions.map(sessionToProto),
    nextPageToken: page.nextPageToken ?? "",
  });
  sendJson(response, rest.json.toJson("sessionbridge.v1.ListResponse", bytes));
}

/**
 * The journal as Server-Sent Events: each entry is an event whose id is its journal index
 * and whose data is the HistoryResponse JSON; it stays open and streams new entries until
 * the session ends (then an `end` event). A client that reconnects with Last-Event-ID
 * resumes after that entry. Each write waits for the client to take the last one
 * (backpressure): a slow reader holds back the journal reader, never a growing buffer.
 */
async function events(
  rest: SessionsRest,
  id: string,
  request: HttpRequest,
  response: HttpResponse,
  principal: string,
): Promise<void> {
  const lastEventId = headerValue(request.headers, "last-event-id");
  let fromIndex = 1;
  if (lastEventId !== undefined && lastEventId !== "") {
    if (!/^\d{1,15}$/.test(lastEventId)) {
      throw new BridgeError(
        Code.INVALID_ARGUMENT,
        Reason.INVALID_REQUEST,
        "Last-Event-ID must be a journal index",
      );
    }
    fromIndex = Number(lastEventId) + 1;
  }
  // Not found (or not the caller's, S13) is answered as a plain error before the stream opens.
  await rest.api.get(id, principal);
  const abort = new AbortController();
  response.once("close", () => abort.abort());
  const headers: OutgoingHttpHeaders = {
    "content-type": "text/event-stream",
    "cache-control": "no-cache",
  };
  response.writeHead(200, headers);
  try {
    for await (const entry of rest.api.history(
      id,
      { follow: true, fromIndex, signal: abort.signal },
      principal,
    )) {
      const bytes = d.history.responseSerialize({
        entry: { index: entry.index, envelope: decodeEnvelope(entry.envelope) },
      });
      const data = rest.json.toJson("sessionbridge.v1.HistoryResponse", bytes);
      if (!(await write(response, `id: ${entry.index}\nevent: entry\ndata: ${data}\n\n`))) return;
    }
    await write(response, "event: end\ndata: {}\n\n");
    response.end();
  } catch (error) {
    if (abort.signal.aborted) return;
    const body = JSON.stringify(connectErrorJson(BridgeError.from(error)));
    await write(response, `event: error\ndata: ${body}\n\n`);
    response.end();
  }
}

/** Writes, then waits for the client to take it; false when the client went away. */
function write(response: HttpResponse, text: string): Promise<boolean> {
  if (response.destroyed || response.writableEnded) return Promise.resolve(false);
  const ok = (response as unknown as NodeJS.WritableStream).write(text);
  if (ok) return Promise.resolve(true);
  return new Promise((resolve) => {
    const done = (): void => {
      response.off("drain", onDrain);
      response.off("close", onClose);
    };
    const onDrain = (): void => {
      done();
      resolve(true);
    };
    const onClose = (): void => {
      done();
      resolve(false);
    };
    response.on("drain", onDrain);
    response.on("close", onClose);
  });
}

function sendJson(response: HttpResponse, text: string): void {
  const body = Buffer.from(text, "utf8");
  response.writeHead(200, { "content-type": "application/json", "content-length": body.length });
  response.end(body);
}

function checkId(id: string): string {
  if (!SESSION_ID.test(id)) {
    throw new BridgeError(
      Code.INVALID_ARGUMENT,
      Reason.INVALID_SESSION_ID,
      "a session id is 1-128 URL-safe characters",
    );
  }
  return id;
}
