import { EnvelopeKind } from "../../sdk/gen/sessionbridge/v1/envelope.js";
import type { JournalEntry } from "../../sdk/gen/sessionbridge/v1/session.js";
import type { LabClient } from "./lab-client.js";
import { waitFor } from "./wait.js";

/** A session's whole journal as it stands (S9). */
export async function readJournal(client: LabClient, sessionId: string): Promise<JournalEntry[]> {
  const entries: JournalEntry[] = [];
  for await (const entry of client.sessions.history({ sessionId })) entries.push(entry);
  return entries;
}

export const kindsOf = (entries: readonly JournalEntry[]): string[] =>
  entries.map((e) => EnvelopeKind[e.envelope?.kind ?? 0] ?? "UNKNOWN");

/**
 * Waits until the session's journal holds `count` REQUEST entries for `operation`: the
 * bridge journals a request when it accepts it, before its turn (S9), so this is how a
 * test knows a call has arrived and is queued, without guessing at time.
 */
export async function waitForAccepted(
  client: LabClient,
  sessionId: string,
  operation: string,
  count: number,
): Promise<JournalEntry[]> {
  let requests: JournalEntry[] = [];
  await waitFor(
    async () => {
      requests = (await readJournal(client, sessionId)).filter(
        (e) =>
          (e.envelope?.kind === EnvelopeKind.ENVELOPE_KIND_REQUEST ||
            e.envelope?.kind === EnvelopeKind.ENVELOPE_KIND_ONE_WAY) &&
          e.envelope.operation === operation,
      );
      return requests.length >= count;
    },
    10_000,
    `${count} accepted ${operation}`,
  );
  return requests;
}
