import type { ServiceError } from "@grpc/grpc-js";
import { Code, codeFromNumber, codeName } from "../bridge/errors/code.js";
import { decodeErrorInfo, decodeStatus, ERROR_INFO_TYPE_URL } from "../bridge/errors/rich-status.js";
import { SessionState } from "../sdk/gen/sessionbridge/v1/session.js";
import { createSessionServiceClient, type SessionServiceClient } from "../sdk/ts/session-service-client.js";
import { ExitCode } from "./exit-codes.js";
import { historyLine, jsonOf, sessionDetails, sessionTable } from "./session-format.js";

export interface BridgeOptions {
  readonly bridge: string;
  readonly json?: boolean;
}

export interface ListOptions extends BridgeOptions {
  readonly service?: string;
  readonly state?: string;
  readonly pageSize?: number;
  readonly pageToken?: string;
  readonly all?: boolean;
}

export interface HistoryOptions extends BridgeOptions {
  readonly follow?: boolean;
  readonly from?: number;
}

const STATES: Record<string, SessionState> = {
  active: SessionState.SESSION_STATE_ACTIVE,
  closed: SessionState.SESSION_STATE_CLOSED,
  expired: SessionState.SESSION_STATE_EXPIRED,
};

export interface Io {
  readonly out: NodeJS.WritableStream;
  readonly err: NodeJS.WritableStream;
}

/** `sessionbridge sessions …`: talks to a running bridge's SessionService. */
export async function sessionsList(options: ListOptions, io: Io): Promise<number> {
  const state = options.state === undefined ? SessionState.SESSION_STATE_UNSPECIFIED : STATES[options.state];
  if (state === undefined) {
    io.err.write(
      `--state must be one of ${Object.keys(STATES).join(", ")}, got ${JSON.stringify(options.state)}\n`,
    );
    return ExitCode.INVALID;
  }
  return withClient(options, io, async (client) => {
    let pageToken = options.pageToken ?? "";
    let first = true;
    do {
      const page = await client.listSessions({
        service: options.service ?? "",
        state,
        pageSize: options.pageSize ?? 0,
        pageToken,
      });
      if (options.json) for (const s of page.sessions) io.out.write(`${jsonOf(s)}\n`);
      else if (page.sessions.length > 0 || first) io.out.write(`${sessionTable(page.sessions)}\n`);
      pageToken = page.nextPageToken;
      first = false;
      if (!options.all && pageToken !== "" && !options.json) {
        io.err.write(`more sessions: --page-token ${pageToken} (or --all)\n`);
      }
    } while (options.all && pageToken !== "");
    return ExitCode.OK;
  });
}

export function sessionsShow(id: string, options: BridgeOptions, io: Io): Promise<number> {
  return withClient(options, io, async (client) => {
    const session = await client.getSession(id);
    io.out.write(`${options.json ? jsonOf(session) : sessionDetails(session)}\n`);
    return ExitCode.OK;
  });
}

export function sessionsHistory(id: string, options: HistoryOptions, io: Io): Promise<number> {
  return withClient(options, io, async (client) => {
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    process.once("SIGINT", stop);
    try {
      const entries = client.history(
        { sessionId: id, follow: options.follow ?? false, fromIndex: options.from ?? 0 },
        controller.signal,
      );
      for await (const entry of entries)
        io.out.write(`${options.json ? jsonOf(entry) : historyLine(entry)}\n`);
    } finally {
      process.off("SIGINT", stop);
    }
    return ExitCode.OK;
  });
}

export function sessionsClose(id: string, options: BridgeOptions, io: Io): Promise<number> {
  return withClient(options, io, async (client) => {
    const session = await client.closeSession(id);
    io.out.write(`${options.json ? jsonOf(session) : sessionDetails(session)}\n`);
    return ExitCode.OK;
  });
}

async function withClient(
  options: BridgeOptions,
  io: Io,
  work: (client: SessionServiceClient) => Promise<number>,
): Promise<number> {
  const client = createSessionServiceClient(options.bridge, { deadlineMs: 10_000 });
  try {
    return await work(client);
  } catch (error) {
    io.err.write(`${describeFailure(error as ServiceError, options.bridge)}\n`);
    return ExitCode.FAILURE;
  } finally {
    client.close();
  }
}

/** "error: NOT_FOUND (SESSION_NOT_FOUND): session … not found". */
function describeFailure(error: ServiceError, bridge: string): string {
  if (typeof error.code !== "number") return `error: ${error.message}`;
  const code = codeFromNumber(error.code);
  if (code === Code.UNAVAILABLE || code === Code.DEADLINE_EXCEEDED) {
    return `error: cannot reach the bridge at ${bridge} (${codeName(code)}: ${error.details})`;
  }
  const raw = error.metadata?.get("grpc-status-details-bin")[0];
  let reason = "";
  if (raw !== undefined && typeof raw !== "string") {
    const info = decodeStatus(raw).details.find((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
    if (info !== undefined) reason = ` (${decodeErrorInfo(info.value).reason})`;
  }
  return `error: ${codeName(code)}${reason}: ${error.details}`;
}
