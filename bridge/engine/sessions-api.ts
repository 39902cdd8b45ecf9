import { BridgeError } from "../errors/bridge-error.js";
import { Code } from "../errors/code.js";
import { Reason } from "../errors/reason.js";
import type { JournalRecord, SessionRecord, SessionState } from "../store/records.js";
import type { SessionPage, SessionStore } from "../store/session-store.js";
import type { JournalFeed } from "./journal-feed.js";
import type { LiveSession } from "./live-session.js";
import { sessionNotFound } from "./session-errors.js";
import type { SessionRegistry } from "./session-registry.js";

export interface ListOptions {
  readonly service?: string;
  readonly state?: SessionState;
  readonly pageSize?: number;
  readonly pageToken?: string;
}

export interface HistoryOptions {
  /** Keep streaming new entries until the session ends (S9). */
  readonly follow?: boolean;
  /** 1-based index to start at. */
  readonly fromIndex?: number;
  readonly signal?: AbortSignal;
}

/** The SessionService operations, for any adapter to expose. Every one is scoped to the caller (S13). */
export interface SessionsApi {
  get(sessionId: string, principal: string): Promise<SessionRecord>;
  list(options: ListOptions, principal: string): Promise<SessionPage>;
  history(sessionId: string, options: HistoryOptions, principal: string): AsyncIterable<JournalRecord>;
  /** Idempotent: an ended session is returned as it is (S12). */
  close(sessionId: string, principal: string): Promise<SessionRecord>;
}

export interface SessionsApiDeps {
  readonly store: SessionStore;
  readonly registry: SessionRegistry;
  readonly feed: JournalFeed;
  readonly close: (session: LiveSession) => Promise<void>;
}

const DEFAULT_PAGE = 50;
const MAX_PAGE = 1000;
const HISTORY_CHUNK = 500;

export function createSessionsApi(deps: SessionsApiDeps): SessionsApi {
  const { store, registry, feed } = deps;

  async function find(sessionId: string, principal: string): Promise<SessionRecord> {
    const live = registry.get(sessionId);
    if (live !== undefined) {
      if (live.principal !== principal) throw sessionNotFound(sessionId);
      return live.toRecord();
    }
    const record = await store.getSession(sessionId);
    if (record === undefined || record.principal !== principal) throw sessionNotFound(sessionId);
    return record;
  }

  return {
    get: find,

    async list(options, principal) {
      const pageSize =
        options.pageSize === undefined || options.pageSize === 0 ? DEFAULT_PAGE : options.pageSize;
      if (!Number.isInteger(pageSize) || pageSize < 1 || pageSize > MAX_PAGE) {
        throw new BridgeError(
          Code.INVALID_ARGUMENT,
          Reason.INVALID_REQUEST,
          `page_size must be between 1 and ${MAX_PAGE}, got ${pageSize}`,
        );
      }
      const page = await store.listSessions({
        pageSize,
        principal,
        ...(options.service ? { service: options.service } : {}),
        ...(options.state ? { state: options.state } : {}),
        ...(options.pageToken ? { pageToken: options.pageToken } : {}),
      });
      // Live sessions change between commits (last activity); show them as they are now.
      const sessions = page.sessions.map((s) => registry.get(s.id)?.toRecord() ?? s);
      return { sessions, nextPageToken: page.nextPageToken };
    },

    history(sessionId, options, principal) {
      return readHistory(sessionId, options, principal);
    },

    async close(sessionId, principal) {
      const live = registry.get(sessionId);
      if (live !== undefined && live.principal === principal) {
        await deps.close(live);
        return live.toRecord();
      }
      return find(sessionId, principal);
    },
  };

  async function* readHistory(sessionId: string, options: HistoryOptions, principal: string) {
    await find(sessionId, principal);
    let next = Math.max(1, options.fromIndex ?? 1);
    if (!options.follow) {
      for (;;) {
        const chunk = await store.readJournal(sessionId, next, HISTORY_CHUNK);
        for (const entry of chunk) yield entry;
        if (chunk.length < HISTORY_CHUNK) return;
        next = (chunk.at(-1)?.index ?? next) + 1;
      }
    }
    // Follow: subscribe before reading, so nothing recorded in between is missed. The
    // feed only wakes the reader: entries are read back from the store by index, at the
    // reader's own pace, so a follower that does not keep up holds nothing in memory.
    let changed = false;
    let complete = false;
    let wake: (() => void) | undefined;
    const unsubscribe = feed.subscribe(sessionId, (event) => {
      if (event.entries !== undefined) changed = true;
      if (event.complete === true) complete = true;
      wake?.();
    });
    const onAbort = (): void => wake?.();
    options.signal?.addEventListener("abort", onAbort);
    try {
      for (;;) {
        changed = false;
        const done = complete || (registry.get(sessionId) === undefined && !feed.unsettled(sessionId));
        for (;;) {
          const chunk = await store.readJournal(sessionId, next, HISTORY_CHUNK);
          for (const entry of chunk) {
            if (options.signal?.aborted) return;
            yield entry;
            next = entry.index + 1;
          }
          if (chunk.length < HISTORY_CHUNK) break;
        }
        if (options.signal?.aborted) return;
        // Done once the session has ended and its last call recorded its outcome; the
        // read above started after that was known, so it saw everything.
        if (done) return;
        if (changed || complete) continue;
        await new Promise<void>((resolve) => {
          wake = resolve;
          if (changed || complete || options.signal?.aborted) resolve();
        });
        wake = undefined;
      }
    } finally {
      unsubscribe();
      options.signal?.removeEventListener("abort", onAbort);
    }
  }
}
