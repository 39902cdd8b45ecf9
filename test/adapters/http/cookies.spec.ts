import { expect } from "chai";
import { type LabHarness, startLabHarness } from "../../support/lab-harness.js";

describe("HTTP inbound: cookies bound to the session id and to a correlation variable", function () {
  this.timeout(30_000);
  let harness: LabHarness;
  let base: string;
  const call = (method: string, body: object, cookie?: string) =>
    fetch(`${base}/test.lab.v1.Counter/${method}`, {
      method: "POST",
      headers: { "content-type": "application/json", ...(cookie === undefined ? {} : { cookie }) },
      body: JSON.stringify(body),
    });

  before(async () => {
    harness = await startLabHarness("memory", {
      adjust: (config) => ({
        ...config,
        listeners: {
          ...config.listeners,
          httpCookies: [
            { name: "sb_session", bind: "session" },
            { name: "lab_key", bind: "key" },
          ],
        },
      }),
    });
    base = `http://${harness.runtime.http?.address}`;
  });
  after(() => harness?.close());

  it("S1, S2: answers set HttpOnly, SameSite cookies; a later request carries its session and correlation value in them", async () => {
    const started = await call("Start", { key: "ck-1", text: "a" });
    expect(started.status).to.equal(200);
    const id = started.headers.get("sb-session-id") as string;
    const cookies = started.headers.getSetCookie();
    expect(cookies).to.include(`sb_session=${id}; Path=/; HttpOnly; SameSite=Lax`);
    expect(cookies).to.include("lab_key=ck-1; Path=/; HttpOnly; SameSite=Lax");
    expect(cookies.join()).to.not.include("Secure");

    // The correlation value comes from the cookie when the message leaves it empty.
    const byValue = await call("Do", { text: "b" }, "lab_key=ck-1");
    expect(byValue.status).to.equal(200);
    const result = (await byValue.json()) as { sessionId: string; log: string[] };
    expect(result.sessionId).to.equal(id);
    expect(result.log).to.deep.equal(["Start:a", "Do:b"]);

    // The session cookie names the session; a stale one is NOT_FOUND, never another session.
    const byId = await call("Do", { key: "ck-1", text: "c" }, `sb_session=${id}`);
    expect(byId.status).to.equal(200);
    const stale = await call("Do", { key: "ck-1" }, "sb_session=not-this-session");
    expect(stale.status).to.equal(404);
    // A starter is never redirected by a session cookie: it opens its own session.
    const other = await call("Start", { key: "ck-2" }, `sb_session=${id}`);
    expect(other.headers.get("sb-session-id")).to.not.equal(id);
  });
});
