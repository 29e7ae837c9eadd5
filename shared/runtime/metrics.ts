// Prometheus metrics every function host exposes on GET /metrics; functions add their own to the registry.
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry, type Metric } from "prom-client";

export interface RuntimeMetrics {
  registry: Registry;
  observe(route: string, status: number, outcome: string, startedAt: number): void;
}

export function createRuntimeMetrics(functionName: string, withProcessMetrics = true): RuntimeMetrics {
  const registry = new Registry();
  registry.setDefaultLabels({ function: functionName });
  if (withProcessMetrics) collectDefaultMetrics({ register: registry });
  const requests = new Counter({
    name: "service_ca_requests_total",
    help: "Requests handled, by route, HTTP status and outcome",
    labelNames: ["route", "status", "outcome"],
    registers: [registry],
  });
  const duration = new Histogram({
    name: "service_ca_request_duration_seconds",
    help: "Time to handle a request",
    labelNames: ["route"],
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const errors = new Counter({
    name: "service_ca_errors_total",
    help: "Requests that ended in an error, by reason (malformed, unauthenticated, forbidden, conflict, transient, internal, ...)",
    labelNames: ["route", "reason"],
    registers: [registry],
  });
  return {
    registry,
    observe: (route, status, outcome, startedAt) => {
      requests.inc({ route, status: String(status), outcome });
      if (status >= 400) errors.inc({ route, reason: outcome });
      duration.observe({ route }, (performance.now() - startedAt) / 1000);
    },
  };
}

/**
 * The metric `name` in `registry`, made by `make` on first use: prom-client refuses a second registration of a
 * name, and several modules of one function may ask for the same metric.
 */
export function metricOnce<M extends Metric>(
  registry: Registry,
  name: string,
  make: (registers: Registry[]) => M,
): M {
  return (registry.getSingleMetric(name) as M | undefined) ?? make([registry]);
}

/** The counter `name` in `registry` (made on first use). */
export const counterIn = (registry: Registry, name: string, help: string, labelNames: string[] = []) =>
  metricOnce(registry, name, (registers) => new Counter({ name, help, labelNames, registers }));

/** The gauge `name` in `registry` (made on first use: a gauge set for the first time is exported from then on). */
export const gaugeIn = (registry: Registry, name: string, help: string, labelNames: string[] = []) =>
  metricOnce(registry, name, (registers) => new Gauge({ name, help, labelNames, registers }));
