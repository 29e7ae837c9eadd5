// Writes the API server was spared: an object read and found already current is not written.
import type { Registry } from "prom-client";
import { counterIn } from "../runtime/metrics.ts";

export type WriteSkipped = (kind: string) => void;

export function writesSkipped(registry: Registry): WriteSkipped {
  const skipped = counterIn(
    registry,
    "service_ca_writes_skipped_total",
    "Objects found already current, so no write was made, by kind",
    ["kind"],
  );
  return (kind) => skipped.inc({ kind });
}
