// The trusted bundle's oldest not-after, like the CA's expiry, exists only once a function has loaded the CA.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { caMetrics } from "../../shared/ca-store/metrics.ts";

describe("service_ca_trusted_oldest_expiry_time_seconds", () => {
  it("is absent until a bundle is known, then the earliest not-after in it", async () => {
    const registry = new Registry();
    const metrics = caMetrics(registry);
    metrics.trustedNotAfters([]);
    assert.doesNotMatch(await registry.metrics(), /service_ca_trusted_oldest_expiry_time_seconds/);
    const previous = new Date("2027-03-01T00:00:00Z");
    metrics.trustedNotAfters([new Date("2029-01-23T06:09:26Z"), previous]);
    assert.match(
      await registry.metrics(),
      new RegExp(`^service_ca_trusted_oldest_expiry_time_seconds ${previous.getTime() / 1000}$`, "m"),
    );
  });
});
