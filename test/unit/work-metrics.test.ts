// Metrics an alert can trust: the CA's expiry exists only once a function knows it.
import { describe, it } from "node:test";
import assert from "node:assert/strict";
import { Registry } from "prom-client";
import { caMetrics } from "../../shared/ca-store/metrics.ts";
import { injectionMetrics } from "../../shared/inject/metrics.ts";

describe("work metrics", () => {
  it("exports no service_ca_expiry_time_seconds until the CA's not-after is known (never a 0 read as 1970)", async () => {
    const registry = new Registry();
    injectionMetrics(registry).injected("configmap");
    const metrics = caMetrics(registry);
    assert.doesNotMatch(await registry.metrics(), /service_ca_expiry_time_seconds/);
    const notAfter = new Date("2029-01-23T06:09:26Z");
    metrics.caNotAfter(notAfter);
    metrics.caNotAfter(notAfter); // set again: the same one series
    const text = await registry.metrics();
    assert.match(text, new RegExp(`^service_ca_expiry_time_seconds ${notAfter.getTime() / 1000}$`, "m"));
    assert.equal(text.match(/^service_ca_expiry_time_seconds /gm)?.length, 1);
  });
});
