// The CA's metrics: its not-after (OpenShift's name, so alerts carry over) and the trusted bundle's earliest one.
import type { Registry } from "prom-client";
import { gaugeIn } from "../runtime/metrics.ts";
import type { CaMaterial } from "./store.ts";

export interface CaMetrics {
  caNotAfter(notAfter: Date): void;
  /** The not-after of every CA certificate in the bundle this function trusts (current, and previous in an overlap). */
  trustedNotAfters(notAfters: Date[]): void;
}

const seconds = (d: Date) => Math.floor(d.getTime() / 1000);

/**
 * Each gauge is registered with its first value: an unset gauge is exported as 0, which an expiry alert reads as a
 * CA that expired in 1970, and a function that never loads the CA (the injectors) must not export the series.
 */
export function caMetrics(registry: Registry): CaMetrics {
  const gauge = (name: string, help: string) => gaugeIn(registry, name, help);
  return {
    caNotAfter: (d) =>
      gauge(
        "service_ca_expiry_time_seconds",
        "Unix time at which the current service CA certificate expires",
      ).set(seconds(d)),
    // Past the earliest not-after in the trusted bundle, a CA that has expired is still trusted (the previous CA
    // outstayed its overlap).
    trustedNotAfters: (ds) => {
      if (ds.length === 0) return;
      gauge(
        "service_ca_trusted_oldest_expiry_time_seconds",
        "Unix time at which the earliest-expiring CA certificate in the bundle this function trusts expires",
      ).set(Math.floor(Math.min(...ds.map((d) => d.getTime())) / 1000));
    },
  };
}

/** Sets both gauges from the CA in use (a CaStore's `onMaterial`). */
export function caExpiryGauge(registry: Registry): (material: CaMaterial) => void {
  const metrics = caMetrics(registry);
  return (m) => {
    metrics.caNotAfter(m.signer.cert.notAfter);
    metrics.trustedNotAfters(m.bundle.map((c) => c.notAfter));
  };
}
