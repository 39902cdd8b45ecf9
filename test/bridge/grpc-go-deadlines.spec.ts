import { sessionDeadlineScenarios } from "../support/deadline-scenarios.js";
import { labTargets, useLabHarness } from "../support/lab-harness.js";

/**
 * S15 deadlines set by grpc-go: it sends grpc-timeout in microseconds ("4999873u") or
 * nanoseconds for short deadlines, where grpc-js sends milliseconds. The same scenarios
 * run for grpc-js in fault-deadline-metadata.spec.ts.
 */
for (const target of labTargets(["grpc-go"])) {
  describe(`deadlines set by grpc-go (S15), ${target.title}`, () => {
    const harness = useLabHarness(target);
    sessionDeadlineScenarios(harness);
  });
}
