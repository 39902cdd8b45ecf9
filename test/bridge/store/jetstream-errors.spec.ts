import { JetStreamApiError } from "@nats-io/jetstream";
import { expect } from "chai";
import { Code } from "../../../bridge/errors/code.js";
import { Reason } from "../../../bridge/errors/reason.js";
import { natsStoreError } from "../../../bridge/store/jetstream-errors.js";

/**
 * How the JetStream store reports what NATS answered: a cluster that cannot serve for a
 * moment is UNAVAILABLE (retried by clients, nothing acknowledged), anything else INTERNAL.
 */
describe("JetStream store errors", () => {
  it("answers JetStream's 'temporarily unavailable' (10008, a node restarting) with UNAVAILABLE", () => {
    // The error the client library raises for the server's answer while a cluster node
    // restarts; it used to become INTERNAL, which no client retries.
    const answer = new JetStreamApiError({
      code: 503,
      err_code: 10008,
      description: "JetStream system temporarily unavailable",
    });
    const error = natsStoreError(answer, "cannot commit the batch");
    expect(error.code).to.equal(Code.UNAVAILABLE);
    expect(error.reason).to.equal(Reason.STORE_FAILURE);
    const wrapped = natsStoreError(new Error("JetStream system temporarily unavailable"), "cannot read");
    expect(wrapped.code).to.equal(Code.UNAVAILABLE);
  });

  it("keeps timeouts and missing responders UNAVAILABLE and other failures INTERNAL", () => {
    expect(natsStoreError(new Error("timeout"), "x").code).to.equal(Code.UNAVAILABLE);
    expect(natsStoreError(new Error("jetstream is not enabled: no responders"), "x").code).to.equal(
      Code.UNAVAILABLE,
    );
    expect(natsStoreError(new Error("maximum payload exceeded"), "x").code).to.equal(Code.INTERNAL);
  });
});
