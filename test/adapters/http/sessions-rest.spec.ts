import { expect } from "chai";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";

interface SseEvent {
  readonly id: string | undefined;
  readonly event: string;
  readonly data: string;
}

/** A small Server-Sent Events reader over fetch's body stream (the text/event-stream format). */
async function* readEvents(body: ReadableStream<Uint8Array>): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buffer = "";
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    for (let end = buffer.indexOf("\n\n"); end >= 0; end = buffer.indexOf("\n\n")) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let id: string | undefined;
      let event = "message";
      const data: string[] = [];
      for (const line of block.split("\n")) {
        const colon = line.indexOf(":");
        const field = line.slice(0, colon);
        const value = line.slice(colon + 1).replace(/^ /, "");
        if (field === "id") id = value;
        else if (field === "event") event = value;
        else if (field === "data") data.push(value);
      }
      yield { id, event, data: data.join("\n") };
    }
  }
}

describe("HTTP inbound: the sessions API and the journal as Server-Sent Events", function () {
  this.timeout(30_000);
  let harness: LabHarness;
  let base: string;
  const call = (method: string, body: object) =>
    fetch(`${base}/test.lab.v1.Counter/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });

  before(async () => {
    harness = await startLabHarness("sqlite", {
      adjust: (config) => ({ ...config, listeners: { ...config.listeners, http: "127.0.0.1:0" } }),
    });
    base = `http://${harness.runtime.http?.address}`;
  });
  after(() => harness?.close());

  it("S9, S12: lists and gets sessions, streams the journal live, resumes with Last-Event-ID, and ends with the session", async () => {
    const started = await call("Start", { key: "sse-1", text: "a" });
    const id = started.headers.get("sb-session-id") as string;
    expect(id).to.be.a("string");

    const listed = (await (await fetch(`${base}/sessions?state=active`)).json()) as {
      sessions: { id: string }[];
    };
    expect(listed.sessions.map((s) => s.id)).to.include(id);
    const got = (await (await fetch(`${base}/sessions/${id}`)).json()) as {
      session: { id: string; state: string; service: string };
    };
    expect(got.session).to.include({ id, state: "SESSION_STATE_ACTIVE", service: "test.lab.v1.Counter" });

    const abort = new AbortController();
    const live = await fetch(`${base}/sessions/${id}/events`, { signal: abort.signal });
    expect(live.status).to.equal(200);
    expect(live.headers.get("content-type")).to.equal("text/event-stream");
    const reader = readEvents(live.body as ReadableStream<Uint8Array>);
    const first = (await reader.next()).value as SseEvent;
    expect(first.id).to.equal("1");
    expect(first.event).to.equal("entry");
    expect(JSON.parse(first.data).entry.envelope.operation).to.equal("/test.lab.v1.Counter/Start");
    const seen: SseEvent[] = [first];
    while (seen.length < 2) seen.push((await reader.next()).value as SseEvent);
    // Live: a call made now arrives on the open stream.
    await call("Do", { key: "sse-1", text: "b" });
    for (;;) {
      const next = (await reader.next()).value as SseEvent;
      seen.push(next);
      if (JSON.parse(next.data).entry.envelope.operation === "/test.lab.v1.Counter/Do") break;
    }
    abort.abort();
    await reader.return(undefined).catch(() => {});

    // Resume after the second entry: the stream starts at the third.
    const resumed = await fetch(`${base}/sessions/${id}/events`, { headers: { "last-event-id": "2" } });
    const again = readEvents(resumed.body as ReadableStream<Uint8Array>);
    expect(((await again.next()).value as SseEvent).id).to.equal("3");

    // S12: closing the session ends the stream with an end event.
    const closed = (await (await fetch(`${base}/sessions/${id}`, { method: "DELETE" })).json()) as {
      session: { state: string };
    };
    expect(closed.session.state).to.equal("SESSION_STATE_CLOSED");
    const rest: SseEvent[] = [];
    for await (const event of again) rest.push(event);
    expect(rest.at(-1)?.event).to.equal("end");
  });

  it("an unknown session is a 404 Connect error; a malformed id is 400; other methods 405", async () => {
    const missing = await fetch(`${base}/sessions/no-such-session`);
    expect(missing.status).to.equal(404);
    expect(((await missing.json()) as { code: string }).code).to.equal("not_found");
    const missingEvents = await fetch(`${base}/sessions/no-such-session/events`);
    expect(missingEvents.status).to.equal(404);
    const bad = await fetch(`${base}/sessions/${encodeURIComponent("a b")}`);
    expect(bad.status).to.equal(400);
    const post = await fetch(`${base}/sessions/abc`, { method: "POST" });
    expect(post.status).to.equal(405);
  });
});
