// issue-serving-cert: a Service asks for a serving certificate by annotation; keep its TLS Secret correct.
import { defineFunction } from "../../shared/host/define.ts";
import { servingCertConfigShape } from "../../shared/serving-cert/config.ts";
import { apiServerEvent } from "../../shared/events/knative.ts";
import { openCaStore } from "../../shared/ca-store/store.ts";
import { caStoreConfigShape } from "../../shared/ca-store/layout.ts";
import { reconcileService, type ServingCertDeps } from "../../shared/serving-cert/reconcile.ts";
import { servicesUsingSecret } from "../../shared/serving-cert/lookup.ts";
import { forbidden } from "../../shared/runtime/errors.ts";
import { issuanceMetrics } from "../../shared/serving-cert/metrics.ts";
import { KeyPool } from "../../shared/serving-cert/key-pool.ts";
import { eventComponent } from "../../shared/names.ts";
import { KeyedLimiter, retryWithBackoff } from "../../shared/runtime/concurrency.ts";
import { z } from "zod";
import { Gauge } from "prom-client";

export default defineFunction({
  name: "issue-serving-cert",
  // Who may send it events (infra/base/sources/).
  sources: [
    { kind: "ApiServerSource", name: "services" },
    { kind: "ApiServerSource", name: "serving-secrets" },
  ],
  description:
    "issues and renews the TLS Secret of every Service annotated service.beta.openshift.io/serving-cert-secret-name",
  config: {
    ...caStoreConfigShape,
    ...servingCertConfigShape,
    KEY_POOL_SIZE: z.coerce
      .number()
      .int()
      .min(0)
      .max(64)
      .default(8)
      .describe("RSA keys generated ahead of need, so key generation leaves the latency path (0: none)"),
    KEY_POOL_WORKERS: z.coerce
      .number()
      .int()
      .min(1)
      .max(16)
      .default(2)
      .describe("RSA keys generated at once by the pool (2 keeps a 2-core node's cores busy refilling)"),
    MAX_IN_FLIGHT_PER_NAMESPACE: z.coerce
      .number()
      .int()
      .min(0)
      .max(1000)
      .default(2)
      .describe(
        "events of one namespace handled at once, the rest queued in order, so one tenant's churn cannot starve another's (0: no limit)",
      ),
    QUEUED_RETRY_SECONDS: z.coerce
      .number()
      .min(0)
      .max(3600)
      .default(2)
      .describe(
        "first delay before queued work that failed is tried again (doubling, 4 tries in all; the scan repairs what is still left)",
      ),
    QUEUE_DRAIN_SECONDS: z.coerce
      .number()
      .min(0)
      .max(300)
      .default(20)
      .describe(
        "at shutdown, how long queued work is still worked through (within the pod's 30 s grace; the scan repairs what is left)",
      ),
  },
  event: apiServerEvent([
    { apiVersion: "v1", kind: "Service" },
    { apiVersion: "v1", kind: "Secret" },
  ]),
  init(ctx): ServingCertDeps & { perNamespace: KeyedLimiter; shutdownGraceMs: number } {
    const { config, kube, clock, log, metrics } = ctx;
    const perNamespace = new KeyedLimiter(config.MAX_IN_FLIGHT_PER_NAMESPACE, {
      onBackgroundFailure: retryWithBackoff(config.QUEUED_RETRY_SECONDS * 1000, QUEUED_TRIES, log),
    });
    new Gauge({
      name: "service_ca_queued_events",
      help: "Events answered and waiting for their namespace's turn (one per object however many named it)",
      registers: [metrics],
      collect() {
        this.set(perNamespace.queued);
      },
    });
    return {
      perNamespace,
      shutdownGraceMs: config.QUEUE_DRAIN_SECONDS * 1000,
      kube: kube(),
      ca: openCaStore(ctx),
      clock,
      log,
      component: eventComponent("issue-serving-cert"),
      validityDays: config.SERVING_CERT_VALIDITY_DAYS,
      refreshFraction: config.SERVING_CERT_REFRESH_FRACTION,
      singleLabelNames: config.SERVING_CERT_SINGLE_LABEL_NAMES,
      keyPool:
        config.KEY_POOL_SIZE > 0
          ? new KeyPool(config.KEY_POOL_SIZE, "rsa-2048", config.KEY_POOL_WORKERS)
          : undefined,
      metrics: issuanceMetrics(metrics),
    };
  },
  // Key generation takes whole cores for ~200 ms a key: it starts once the function is serving, not before.
  started(state) {
    state.keyPool?.start();
  },
  async shutdown(state) {
    // What is queued was answered already: finish it within the shutdown budget; the scan repairs the rest.
    await state.perNamespace.close(state.shutdownGraceMs);
    state.keyPool?.close();
  },
  async handle(event, { state, log, cloudevent }) {
    const { namespace, name, kind } = event.ref;
    if (!namespace) throw forbidden(`${kind} ${name} has no namespace`);
    if (kind === "Service" && event.action === "delete") return { outcome: "service-gone" };
    // The CA Secret carries our label, so the serving-secrets source sends it too; it is never a serving Secret.
    if (state.ca.isCaSecret({ kind, namespace, name }))
      throw forbidden(
        `Secret ${namespace}/${name} is the CA's own Secret; issue-serving-cert does not act on it`,
      );
    const work = () => handleInNamespace(event.ref, namespace, { ...state, log });
    if (!cloudevent.respondAsync) return state.perNamespace.run(namespace, work);
    // The source waits for this answer before it sends its next event, whoever's it is: answer now, and let the
    // namespace's own queue (one entry per object, however many events name it) hold this tenant's backlog.
    const queued = state.perNamespace.submit(namespace, `${kind}/${name}`, work);
    return { outcome: queued, queuedEvents: state.perNamespace.queued };
  },
});

const QUEUED_TRIES = 4;

// Whatever the event's action: the queue holds one entry per object, and the reconcile re-reads it.
async function handleInNamespace(
  { name, kind }: { name: string; kind: string },
  namespace: string,
  deps: ServingCertDeps,
) {
  if (kind === "Service") return { ...(await reconcileService(deps, namespace, name)) };
  // A Secret changed or went away: the Services that asked for it decide what happens.
  const services = await servicesUsingSecret(deps.kube, namespace, name);
  const results = [];
  for (const svc of services)
    results.push({ service: svc, ...(await reconcileService(deps, namespace, svc)) });
  return { outcome: results.length ? "checked" : "unrelated", services: results };
}
