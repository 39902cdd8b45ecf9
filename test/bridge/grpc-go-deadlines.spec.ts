import { sessionDeadlineScenarios } from "../support/deadline-scenarios.js";
import { labTargets, useLabHarness } from "../support/lab-harness.js";

/**
 * S15 deadlines set by grpc-go on calls in sessions: grpc-go sends grpc-timeout in
 * microseconds ("4999873u") or nanoseconds ("89999123n") where grpc-js sends milliseconds,
 * and the bridge must turn either into a deadline its timers accept. The same scenarios
 * run for grpc-js in fault-deadline-metadata.spec.ts; stateless calls with grpc-go
 * deadlines are covered there too.
 */
for (const target of labTargets(["grpc-go"])) {
  describe(`deadlines set by grpc-go (S15), ${target.title}`, () => {
    const harness = useLabHarness(target);
    sessionDeadlineScenarios(harness);
  });
}
