import type { LiveSession } from "./live-session.js";

/**
 * Live sessions by id and by correlation key (S1, S5). Both lookups are hash lookups, so
 * routing cost does not grow with the number of sessions. A correlation key belongs to at
 * most one live session of a service: binding it is the atomic step that makes a starter
 * the one that starts the session (S2) and any concurrent twin the one that joins it (S3).
 *
 * It also keeps the execution modalities' order (S6): for SEQUENTIAL and SINGLE services,
 * the live sessions in arrival order of their starters; only the first one runs.
 */
export class SessionRegistry {
  readonly #byId = new Map<string, LiveSession>();
  readonly #byKey = new Map<string, LiveSession>();
  readonly #lines = new Map<string, LiveSession[]>();

  get size(): number {
    return this.#byId.size;
  }

  get(id: string): LiveSession | undefined {
    return this.#byId.get(id);
  }

  byCorrelation(service: string, key: string): LiveSession | undefined {
    return this.#byKey.get(indexKey(service, key));
  }

  /** The session now running in a SEQUENTIAL or SINGLE service, if any. */
  current(service: string): LiveSession | undefined {
    return this.#lines.get(service)?.[0];
  }

  /** Every live session, for sweeps and shutdown. */
  all(): IterableIterator<LiveSession> {
    return this.#byId.values();
  }

  /**
   * Adds a session. Returns false, changing nothing, if its correlation key is already
   * bound to a live session of the same service. For SEQUENTIAL/SINGLE services, returns
   * whether the session is first in line (runs now) through `first`.
   */
  add(session: LiveSession): { added: boolean; first: boolean } {
    const key =
      session.correlationKey === undefined
        ? undefined
        : indexKey(session.service.name, session.correlationKey);
    if (key !== undefined && this.#byKey.has(key)) return { added: false, first: false };
    this.#byId.set(session.id, session);
    if (key !== undefined) this.#byKey.set(key, session);
    if (session.service.execution === "concurrent") return { added: true, first: true };
    const line = this.#lines.get(session.service.name) ?? [];
    line.push(session);
    this.#lines.set(session.service.name, line);
    return { added: true, first: line.length === 1 };
  }

  /**
   * Removes an ended session and releases its correlation key (S12: its values may start
   * a new session). Returns the session that now runs in its line, if one moved up.
   */
  remove(session: LiveSession): LiveSession | undefined {
    if (this.#byId.get(session.id) !== session) return undefined;
    this.#byId.delete(session.id);
    if (session.correlationKey !== undefined)
      this.#byKey.delete(indexKey(session.service.name, session.correlationKey));
    const line = this.#lines.get(session.service.name);
    if (line === undefined) return undefined;
    const at = line.indexOf(session);
    if (at >= 0) line.splice(at, 1);
    if (line.length === 0) {
      this.#lines.delete(session.service.name);
      return undefined;
    }
    return at === 0 ? line[0] : undefined;
  }
}

function indexKey(service: string, key: string): string {
  return `${service}\n${key}`;
}
