// The domain metrics every function may move: certificates issued, injections, writes skipped, the CA's expiry.
import { Counter, Gauge, Histogram, type Registry } from "prom-client";

export interface WorkMetrics {
  certificateIssued(reason: string, seconds: number): void;
  injected(kind: string): void;
  /** An object was already what it should be, so nothing was written. */
  writeSkipped(kind: string): void;
  caNotAfter(notAfter: Date): void;
  /** The not-after of every CA certificate in the bundle this function trusts (current, and previous in an overlap). */
  trustedNotAfters(notAfters: Date[]): void;
}

export const noWorkMetrics: WorkMetrics = {
  certificateIssued: () => {},
  injected: () => {},
  writeSkipped: () => {},
  caNotAfter: () => {},
  trustedNotAfters: () => {},
};

const byRegistry = new WeakMap<Registry, WorkMetrics>();

/** The metrics in `registry`, created on first use (prom-client refuses a second registration of a name). */
export function workMetrics(registry: Registry): WorkMetrics {
  const existing = byRegistry.get(registry);
  if (existing) return existing;
  const registers = [registry];
  const issued = new Counter({
    name: "service_ca_certificates_issued_total",
    help: "Serving certificates issued, by reason (secret missing, close to expiry, CA rotated, ...)",
    labelNames: ["reason"],
    registers,
  });
  const issuance = new Histogram({
    name: "service_ca_issuance_duration_seconds",
    help: "Time to issue one serving certificate: key, signature and the Secret write",
    buckets: [0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75, 1, 2.5, 5],
    registers,
  });
  const injections = new Counter({
    name: "service_ca_injections_total",
    help: "CA bundles written into annotated objects, by kind",
    labelNames: ["kind"],
    registers,
  });
  const skipped = new Counter({
    name: "service_ca_writes_skipped_total",
    help: "Objects found already current, so no write was made, by kind",
    labelNames: ["kind"],
    registers,
  });
  // OpenShift's name for the CA's not-after, so existing alerts keep working. Registered with its first value:
  // an unset gauge is exported as 0, which an expiry alert reads as a CA that expired in 1970, and a function
  // that never loads the CA (the injectors) must not export the series at all.
  let expiry: Gauge | undefined;
  const expiryGauge = () =>
    (expiry ??= new Gauge({
      name: "service_ca_expiry_time_seconds",
      help: "Unix time at which the current service CA certificate expires",
      registers,
    }));
  // The earliest not-after in the trusted bundle: past it, a CA that has expired is still trusted (the previous
  // CA outstayed its overlap). Registered with its first value, like the expiry above.
  let oldest: Gauge | undefined;
  const oldestGauge = () =>
    (oldest ??= new Gauge({
      name: "service_ca_trusted_oldest_expiry_time_seconds",
      help: "Unix time at which the earliest-expiring CA certificate in the bundle this function trusts expires",
      registers,
    }));
  const metrics: WorkMetrics = {
    certificateIssued: (reason, seconds) => {
      issued.inc({ reason });
      issuance.observe(seconds);
    },
    injected: (kind) => injections.inc({ kind }),
    writeSkipped: (kind) => skipped.inc({ kind }),
    caNotAfter: (d) => expiryGauge().set(Math.floor(d.getTime() / 1000)),
    trustedNotAfters: (ds) => {
      if (ds.length > 0) oldestGauge().set(Math.floor(Math.min(...ds.map((d) => d.getTime())) / 1000));
    },
  };
  byRegistry.set(registry, metrics);
  return metrics;
}
