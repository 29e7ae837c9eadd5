// CA bundles written into annotated objects, and objects found current.
import { Counter, type Registry } from "prom-client";
import { metricOnce } from "../runtime/metrics.ts";
import { writesSkipped, type WriteSkipped } from "../kube/metrics.ts";

export interface InjectionMetrics {
  injected(kind: string): void;
  /** An object was already what it should be, so nothing was written. */
  writeSkipped: WriteSkipped;
}

export function injectionMetrics(registry: Registry): InjectionMetrics {
  const name = "service_ca_injections_total";
  const injections = metricOnce(
    registry,
    name,
    (registers) =>
      new Counter({
        name,
        help: "CA bundles written into annotated objects, by kind",
        labelNames: ["kind"],
        registers,
      }),
  );
  return { injected: (kind) => injections.inc({ kind }), writeSkipped: writesSkipped(registry) };
}

/** expiry-scan's count of stale bundles it re-injected (its ping's repair of every kind). */
export function reinjectionMetrics(registry: Registry): (kind: string, n: number) => void {
  const reinjected = new Counter({
    name: "service_ca_scan_reinjected_total",
    help: "Stale CA bundles re-injected by expiry-scan, by kind",
    labelNames: ["kind"],
    registers: [registry],
  });
  return (kind, n) => reinjected.inc({ kind }, n);
}
