// CA bundles written into annotated objects, objects found current, and expiry-scan's re-injections.
import type { Registry } from "prom-client";
import { counterIn } from "../runtime/metrics.ts";
import { writesSkipped, type WriteSkipped } from "../kube/metrics.ts";

export interface InjectionMetrics {
  injected(kind: string): void;
  /** An object was already what it should be, so nothing was written. */
  writeSkipped: WriteSkipped;
}

export function injectionMetrics(registry: Registry): InjectionMetrics {
  const injections = counterIn(
    registry,
    "service_ca_injections_total",
    "CA bundles written into annotated objects, by kind",
    ["kind"],
  );
  return { injected: (kind) => injections.inc({ kind }), writeSkipped: writesSkipped(registry) };
}

/** expiry-scan's count of stale bundles it re-injected (its ping's repair of every kind). */
export function reinjectionMetrics(registry: Registry): (kind: string, n: number) => void {
  const help = "Stale CA bundles re-injected by expiry-scan, by kind";
  const reinjected = counterIn(registry, "service_ca_scan_reinjected_total", help, ["kind"]);
  return (kind, n) => reinjected.inc({ kind }, n);
}
