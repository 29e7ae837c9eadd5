// Certificates issued (serving Secrets, and CSRs signed by sign-csr) and how long each took; expiry-scan's account.
import { Histogram, type Registry } from "prom-client";
import { counterIn, gaugeIn, metricOnce } from "../runtime/metrics.ts";
import { writesSkipped, type WriteSkipped } from "../kube/metrics.ts";
import type { ScanResult } from "./scan.ts";

export interface IssuanceMetrics {
  certificateIssued(reason: string, seconds: number): void;
  /** An object was already what it should be, so nothing was written. */
  writeSkipped: WriteSkipped;
}

export function issuanceMetrics(registry: Registry): IssuanceMetrics {
  const issued = counterIn(
    registry,
    "service_ca_certificates_issued_total",
    "Serving certificates issued, by reason (secret missing, close to expiry, CA rotated, ...)",
    ["reason"],
  );
  const name = "service_ca_issuance_duration_seconds";
  const duration = metricOnce(
    registry,
    name,
    (registers) =>
      new Histogram({
        name,
        help: "Time to issue one serving certificate: key, signature and the Secret write",
        buckets: [0.01, 0.025, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.5, 0.75, 1, 2.5, 5],
        registers,
      }),
  );
  return {
    certificateIssued: (reason, seconds) => {
      issued.inc({ reason });
      duration.observe(seconds);
    },
    writeSkipped: writesSkipped(registry),
  };
}

/** Outcomes exported as 0 when a scan found none, so an alert sees "none" rather than no data. */
const SCAN_OUTCOMES = ["issued", "current", "stripped", "foreign-secret", "gave-up", "failed"];

/** expiry-scan's account of each scan: counters, and gauges of the last scan. */
export function scanMetrics(registry: Registry): (scan: ScanResult, at: Date) => void {
  const scanned = counterIn(
    registry,
    "service_ca_scan_services_total",
    "Annotated Services seen by expiry-scan, by outcome (issued, current, stripped, foreign-secret, failed, ...)",
    ["outcome"],
  );
  // What the last scan found, as gauges: expiry-scan scales to zero between pings, so a scrape sees a fresh
  // process whose counters never show an increase; a gauge of the last scan is what an alert can read.
  const lastScan = gaugeIn(
    registry,
    "service_ca_last_scan_services",
    "Annotated Services by outcome in expiry-scan's last scan (gave-up and foreign-secret: given up on)",
    ["outcome"],
  );
  const lastScanTime = gaugeIn(
    registry,
    "service_ca_last_scan_timestamp_seconds",
    "Unix time at which expiry-scan last completed a scan of every annotated Service",
  );
  return (scan, at) => {
    for (const [outcome, n] of Object.entries(scan.outcomes)) scanned.inc({ outcome }, n);
    for (const outcome of new Set([...SCAN_OUTCOMES, ...Object.keys(scan.outcomes)])) {
      lastScan.set({ outcome }, scan.outcomes[outcome as keyof typeof scan.outcomes] ?? 0);
    }
    lastScanTime.set(Math.floor(at.getTime() / 1000));
  };
}
