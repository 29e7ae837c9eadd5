// Writes the API server was spared: an object read and found already current is not written.
import { Counter, type Registry } from "prom-client";
import { metricOnce } from "../runtime/metrics.ts";

export type WriteSkipped = (kind: string) => void;

export function writesSkipped(registry: Registry): WriteSkipped {
  const name = "service_ca_writes_skipped_total";
  const counter = metricOnce(
    registry,
    name,
    (registers) =>
      new Counter({
        name,
        help: "Objects found already current, so no write was made, by kind",
        labelNames: ["kind"],
        registers,
      }),
  );
  return (kind) => counter.inc({ kind });
}
