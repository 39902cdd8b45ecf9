import { Client, credentials, type ServiceError } from "@grpc/grpc-js";
import { Code, codeFromNumber, codeName } from "../bridge/errors/code.js";
import { decodeErrorInfo, decodeStatus, ERROR_INFO_TYPE_URL } from "../bridge/errors/rich-status.js";
import { SessionState } from "../sdk/gen/sessionbridge/v1/session.js";
import { createSessionServiceClient, type SessionServiceClient } from "../sdk/ts/session-service-client.js";
import { ExitCode } from "./exit-codes.js";
import { createPayloadDecoder } from "./payload-decoder.js";
import { createReflectionClient } from "./reflection-client.js";
import {
  createSessionTableWriter,
  entryJson,
  historyLine,
  jsonLine,
  printable,
  sessionDetails,
  sessionJson,
} from "./session-format.js";

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

/**
 * `sessionbridge sessions list`: every page until done; with --page-size one page, and
 * the way to the next on stderr (so stdout stays the data alone).
 */
export async function sessionsList(options: ListOptions, io: Io): Promise<number> {
  const state = options.state === undefined ? SessionState.SESSION_STATE_UNSPECIFIED : STATES[options.state];
  if (state === undefined) {
    io.err.write(
      `--state must be one of ${Object.keys(STATES).join(", ")}, got ${JSON.stringify(options.state)}\n`,
    );
    return ExitCode.INVALID;
  }
  const everything = options.all === true || options.pageSize === undefined;
  return withClient(options, io, async (client) => {
    const table = createSessionTableWriter(io.out);
    let pageToken = options.pageToken ?? "";
    do {
      const page = await client.listSessions({
        service: options.service ?? "",
        state,
        pageSize: options.pageSize ?? 0,
        pageToken,
      });
      if (options.json) for (const s of page.sessions) io.out.write(`${jsonLine(sessionJson(s))}\n`);
      else table.page(page.sessions);
      pageToken = page.nextPageToken;
    } while (everything && pageToken !== "");
    if (pageToken !== "") io.err.write(`more sessions: add --page-token ${pageToken} (or use --all)\n`);
    return ExitCode.OK;
  });
}

export function sessionsShow(id: string, options: BridgeOptions, io: Io): Promise<number> {
  return withClient(options, io, async (client) => {
    const session = await client.getSession(id);
    io.out.write(`${options.json ? jsonLine(sessionJson(session)) : sessionDetails(session)}\n`);
    return ExitCode.OK;
  });
}

export function sessionsHistory(id: string, options: HistoryOptions, io: Io): Promise<number> {
  return withClient(options, io, async (client) => {
    const controller = new AbortController();
    const stop = (): void => controller.abort();
    process.once("SIGINT", stop);
    const reflection = options.json ? new Client(options.bridge, credentials.createInsecure()) : undefined;
    try {
      const decoder =
        reflection === undefined
          ? undefined
          : createPayloadDecoder(createReflectionClient(reflection, DEADLINE_MS));
      const entries = client.history(
        { sessionId: id, follow: options.follow ?? false, fromIndex: options.from ?? 0 },
        controller.signal,
      );
      for await (const entry of entries) {
        const text = decoder === undefined ? historyLine(entry) : jsonLine(await entryJson(entry, decoder));
        io.out.write(`${text}\n`);
      }
    } finally {
      process.off("SIGINT", stop);
      reflection?.close();
    }
    return ExitCode.OK;
  });
}

export function sessionsClose(id: string, options: BridgeOptions, io: Io): Promise<number> {
  return withClient(options, io, async (client) => {
    const session = await client.closeSession(id);
    io.out.write(`${options.json ? jsonLine(sessionJson(session)) : sessionDetails(session)}\n`);
    return ExitCode.OK;
  });
}

const DEADLINE_MS = 10_000;

async function withClient(
  options: BridgeOptions,
  io: Io,
  work: (client: SessionServiceClient) => Promise<number>,
): Promise<number> {
  const client = createSessionServiceClient(options.bridge, { deadlineMs: DEADLINE_MS });
  try {
    return await work(client);
  } catch (error) {
    io.err.write(`${describeFailure(error, options.bridge)}\n`);
    return ExitCode.FAILURE;
  } finally {
    client.close();
  }
}

/**
 * One line: "error: NOT_FOUND (SESSION_NOT_FOUND): session … not found", or for a bridge
 * that cannot be reached, where and why in words ("connection refused").
 */
export function describeFailure(error: unknown, bridge: string): string {
  const e = error as Partial<ServiceError>;
  if (typeof e.code !== "number")
    return `error: ${printable(error instanceof Error ? error.message : String(error))}`;
  const code = codeFromNumber(e.code);
  const details = e.details ?? "";
  if (code === Code.UNAVAILABLE) {
    return `error: cannot reach the bridge at ${printable(bridge)}: ${unreachableCause(details)} (is it running? --bridge ADDR)`;
  }
  if (code === Code.DEADLINE_EXCEEDED) {
    return `error: the bridge at ${printable(bridge)} did not answer within ${DEADLINE_MS / 1000} s`;
  }
  const raw = e.metadata?.get("grpc-status-details-bin")[0];
  let reason = "";
  if (raw !== undefined && typeof raw !== "string") {
    const info = decodeStatus(raw).details.find((d) => d.typeUrl === ERROR_INFO_TYPE_URL);
    if (info !== undefined) reason = ` (${printable(decodeErrorInfo(info.value).reason)})`;
  }
  return `error: ${codeName(code)}${reason}: ${printable(details)}`;
}

const CAUSES: Record<string, string> = {
  ECONNREFUSED: "connection refused",
  ECONNRESET: "connection reset",
  ETIMEDOUT: "connection timed out",
  EHOSTUNREACH: "host unreachable",
  ENETUNREACH: "network unreachable",
  ENOTFOUND: "host not found",
  EAI_AGAIN: "host name lookup failed",
};

/** grpc-js explains UNAVAILABLE in a paragraph; the errno inside it says it in two words. */
function unreachableCause(details: string): string {
  for (const [errno, words] of Object.entries(CAUSES)) if (details.includes(errno)) return words;
  if (/Name resolution failed|DNS resolution failed/i.test(details)) return "host not found";
  return "unavailable";
}
