// expiry-scan: the hourly repair (and the fan-out after a CA change): republish the bundle if it drifted and
// bring every annotated Service's Secret up to date, whatever events were lost.
import { z } from "zod";
import { defineFunction } from "../../shared/runtime/define.ts";
import { apiServerEvent, pingEvent } from "../../shared/events/knative.ts";
import { CaStore } from "../../shared/ca-store/store.ts";
import { caLocationFrom, caStoreConfigShape } from "../../shared/ca-store/layout.ts";
import { caExpiryGauge } from "../../shared/ca-store/observe.ts";
import { scanServices } from "../../shared/serving-cert/scan.ts";
import { forbidden } from "../../shared/runtime/errors.ts";
import { isBundleConfigMap } from "../../shared/inject/bundle-source.ts";

export default defineFunction({
  name: "expiry-scan",
  description:
    "re-issues every serving certificate that is missing, broken, from a retired CA or near expiry, and republishes the CA bundle; runs on a ping and when the published CA bundle changes",
  config: {
    ...caStoreConfigShape,
    SERVING_CERT_VALIDITY_DAYS: z.coerce
      .number()
      .int()
      .min(1)
      .max(3650)
      .default(730)
      .describe("lifetime of a serving certificate"),
    SERVING_CERT_REFRESH_FRACTION: z.coerce
      .number()
      .gt(0)
      .lt(1)
      .default(1 / 3)
      .describe("re-issue when less than this fraction of the lifetime remains"),
    SCAN_CONCURRENCY: z.coerce
      .number()
      .int()
      .min(1)
      .max(64)
      .default(8)
      .describe("Services reconciled at once"),
  },
  // The bundle ConfigMap changes exactly when the CA does, and watching it needs no right to read Secrets.
  event: z.union([pingEvent, apiServerEvent([{ apiVersion: "v1", kind: "ConfigMap" }])]),
  init({ config, kube, clock, log, metrics }) {
    const where = caLocationFrom(config);
    return {
      where,
      concurrency: config.SCAN_CONCURRENCY,
      setExpiry: caExpiryGauge(metrics),
      deps: {
        kube: kube(),
        ca: new CaStore(kube(), where, clock, log),
        clock,
        log,
        validityDays: config.SERVING_CERT_VALIDITY_DAYS,
        refreshFraction: config.SERVING_CERT_REFRESH_FRACTION,
      },
    };
  },
  async handle(event, { state, log }) {
    if (event.source === "apiserver" && !isBundleConfigMap(state.where, event.ref)) {
      throw forbidden(
        `expiry-scan reacts only to the CA bundle ConfigMap ${state.where.namespace}/${state.where.bundleConfigMapName}`,
      );
    }
    const deps = { ...state.deps, log };
    const material = await deps.ca.signingMaterial();
    state.setExpiry(material);
    const bundleRepublished = await deps.ca.publishBundle(material);
    const scan = await scanServices(deps, state.concurrency);
    return { outcome: "scanned", ca: material.name, bundleRepublished, ...scan };
  },
});
