// issue-serving-cert: a Service asks for a serving certificate by annotation; keep its TLS Secret correct.
import { defineFunction } from "../../shared/host/define.ts";
import { issuerConfigShape, servingCertConfigShape } from "../../shared/serving-cert/config.ts";
import { apiServerEvent } from "../../shared/events/knative.ts";
import { openCaStore } from "../../shared/ca-store/store.ts";
import { caStoreConfigShape, type CaLocation } from "../../shared/ca-store/layout.ts";
import { SigningCache } from "../../shared/ca-store/signing-cache.ts";
import { isBundleConfigMap } from "../../shared/ca-store/published-bundle.ts";
import { forbidden } from "../../shared/runtime/errors.ts";
import type { ServingCertDeps } from "../../shared/serving-cert/reconcile.ts";
import { ServingCertEvents } from "../../shared/serving-cert/service-events.ts";
import { issuanceMetrics } from "../../shared/serving-cert/metrics.ts";
import { KeyPool } from "../../shared/serving-cert/key-pool.ts";
import { SettledVersions } from "../../shared/serving-cert/settled-versions.ts";
import { eventComponent } from "../../shared/names.ts";

export default defineFunction({
  name: "issue-serving-cert",
  // Who may send it events (infra/base/sources/).
  sources: [
    { kind: "ApiServerSource", name: "services" },
    { kind: "ApiServerSource", name: "serving-secrets" },
    // The published bundle: the CA changed, so the copy it signs from is read again.
    { kind: "ApiServerSource", name: "ca-bundle-to-issue-serving-cert" },
  ],
  description:
    "issues and renews the TLS Secret of every Service annotated service.beta.openshift.io/serving-cert-secret-name",
  config: {
    ...caStoreConfigShape,
    ...servingCertConfigShape,
    ...issuerConfigShape,
  },
  event: apiServerEvent([
    { apiVersion: "v1", kind: "Service" },
    { apiVersion: "v1", kind: "Secret" },
    { apiVersion: "v1", kind: "ConfigMap" },
  ]),
  init(ctx): ServingCertDeps & { events: ServingCertEvents; where: CaLocation } {
    const { config, kube, clock, log, metrics } = ctx;
    const store = openCaStore(ctx);
    const ca = new SigningCache(store, clock, config.CA_CACHE_SECONDS * 1000);
    const deps: ServingCertDeps = {
      kube: kube(),
      ca,
      clock,
      log,
      component: eventComponent("issue-serving-cert"),
      validityDays: config.SERVING_CERT_VALIDITY_DAYS,
      refreshFraction: config.SERVING_CERT_REFRESH_FRACTION,
      singleLabelNames: config.SERVING_CERT_SINGLE_LABEL_NAMES,
      keepKeyOnRotation: config.SERVING_CERT_KEEP_KEY_ON_ROTATION,
      keyPool:
        config.KEY_POOL_SIZE > 0
          ? new KeyPool(config.KEY_POOL_SIZE, "rsa-2048", config.KEY_POOL_WORKERS)
          : undefined,
      metrics: issuanceMetrics(metrics),
      settled: new SettledVersions(),
    };
    const events = new ServingCertEvents(
      deps,
      {
        maxInFlightPerNamespace: config.MAX_IN_FLIGHT_PER_NAMESPACE,
        retryFirstMs: config.QUEUED_RETRY_SECONDS * 1000,
        drainMs: config.QUEUE_DRAIN_SECONDS * 1000,
      },
      metrics,
    );
    ca.whenReplaced((stale) => events.recheck(stale));
    return { ...deps, events, where: store.where };
  },
  // Key generation takes whole cores for ~200 ms a key: it starts once the function is serving, not before.
  started(state) {
    state.keyPool?.start();
  },
  async shutdown(state) {
    await state.events.close();
    state.keyPool?.close();
  },
  handle(event, { state, log, cloudevent }) {
    if (event.ref.kind === "ConfigMap") {
      if (!isBundleConfigMap(state.where, event.ref))
        throw forbidden(
          `issue-serving-cert reacts only to the CA bundle ConfigMap ${state.where.namespace}/${state.where.bundleConfigMapName}`,
        );
      return state.events.caBundleChanged();
    }
    return state.events.handle(event.ref, event.action, {
      respondAsync: cloudevent.respondAsync,
      log,
      object: event.object,
    });
  },
});
